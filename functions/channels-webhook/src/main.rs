//! Lambda bootstrap of `channels-webhook`: the handler logic lives in the library.

#[tokio::main]
async fn main() -> Result<(), bazaar_aws::Error> {
    bazaar_aws::run(channels_webhook::function).await
}
