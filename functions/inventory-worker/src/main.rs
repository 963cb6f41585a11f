//! Lambda bootstrap of `inventory-worker`: the handler logic lives in the library.

#[tokio::main]
async fn main() -> Result<(), bazaar_aws::Error> {
    bazaar_aws::run(inventory_worker::function).await
}
