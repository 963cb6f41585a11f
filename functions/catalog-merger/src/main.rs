//! Lambda bootstrap of `catalog-merger`: the handler logic lives in the library.

#[tokio::main]
async fn main() -> Result<(), bazaar_aws::Error> {
    bazaar_aws::run(catalog_merger::function).await
}
