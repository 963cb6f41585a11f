//! Lambda bootstrap of `business-metrics`: the handler logic lives in the library.

#[tokio::main]
async fn main() -> Result<(), bazaar_aws::Error> {
    bazaar_aws::run(business_metrics::function).await
}
