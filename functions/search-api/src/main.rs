//! Lambda bootstrap of `search-api`: the handler logic lives in the library.

#[tokio::main]
async fn main() -> Result<(), bazaar_aws::Error> {
    bazaar_aws::run(search_api::function).await
}
