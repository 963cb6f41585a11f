//! Lambda bootstrap of `event-archiver`: the handler logic lives in the library.

#[tokio::main]
async fn main() -> Result<(), bazaar_aws::Error> {
    bazaar_aws::run(event_archiver::function).await
}
