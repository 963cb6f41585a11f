//! Lambda bootstrap of `payments-worker`: the handler logic lives in the library.

#[tokio::main]
async fn main() -> Result<(), bazaar_aws::Error> {
    bazaar_aws::run(payments_worker::function).await
}
