//! Lambda bootstrap of `search-indexer`: the handler logic lives in the library.

#[tokio::main]
async fn main() -> Result<(), bazaar_aws::Error> {
    bazaar_aws::run(search_indexer::function).await
}
