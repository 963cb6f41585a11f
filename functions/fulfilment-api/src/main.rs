//! Lambda bootstrap of `fulfilment-api`: the handler logic lives in the library.

#[tokio::main]
async fn main() -> Result<(), bazaar_aws::Error> {
    bazaar_aws::run(fulfilment_api::function).await
}
