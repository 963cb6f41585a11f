//! Lambda bootstrap of `carrier-webhook`: the handler logic lives in the library.

#[tokio::main]
async fn main() -> Result<(), bazaar_aws::Error> {
    bazaar_aws::run(carrier_webhook::function).await
}
