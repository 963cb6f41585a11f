//! Lambda bootstrap of `orders-prices`: the handler logic lives in the library.

#[tokio::main]
async fn main() -> Result<(), bazaar_aws::Error> {
    bazaar_aws::run(orders_prices::function).await
}
