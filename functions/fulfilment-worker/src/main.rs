//! Lambda bootstrap of `fulfilment-worker`: the handler logic lives in the library.

#[tokio::main]
async fn main() -> Result<(), bazaar_aws::Error> {
    bazaar_aws::run(fulfilment_worker::function).await
}
