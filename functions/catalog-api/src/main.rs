//! Lambda bootstrap of `catalog-api`: the handler logic lives in the library.

#[tokio::main]
async fn main() -> Result<(), bazaar_aws::Error> {
    bazaar_aws::run(catalog_api::function).await
}
