//! Lambda bootstrap of `identity-api`: the handler logic lives in the library.

#[tokio::main]
async fn main() -> Result<(), bazaar_aws::Error> {
    bazaar_aws::run(identity_api::function).await
}
