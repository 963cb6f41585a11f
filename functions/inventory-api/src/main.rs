//! Lambda bootstrap of `inventory-api`: the handler logic lives in the library.

#[tokio::main]
async fn main() -> Result<(), bazaar_aws::Error> {
    bazaar_aws::run(inventory_api::function).await
}
