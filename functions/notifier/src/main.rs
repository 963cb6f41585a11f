//! Lambda bootstrap of `notifier`: the handler logic lives in the library.

#[tokio::main]
async fn main() -> Result<(), bazaar_aws::Error> {
    bazaar_aws::run(notifier::function).await
}
