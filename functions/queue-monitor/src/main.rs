//! Lambda bootstrap of `queue-monitor`: the handler logic lives in the library.

#[tokio::main]
async fn main() -> Result<(), bazaar_aws::Error> {
    bazaar_aws::run(queue_monitor::function).await
}
