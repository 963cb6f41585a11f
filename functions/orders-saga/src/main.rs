//! Lambda bootstrap of `orders-saga`: the handler logic lives in the library.

#[tokio::main]
async fn main() -> Result<(), bazaar_aws::Error> {
    bazaar_aws::run(orders_saga::function).await
}
