//! Lambda bootstrap of `agora-broker`: the handler logic lives in the library.

#[tokio::main]
async fn main() -> Result<(), bazaar_aws::Error> {
    bazaar_aws::run(agora_broker::function).await
}
