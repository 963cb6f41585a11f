//! Lambda bootstrap of `souk-poller`: the handler logic lives in the library.

#[tokio::main]
async fn main() -> Result<(), bazaar_aws::Error> {
    bazaar_aws::run(souk_poller::function).await
}
