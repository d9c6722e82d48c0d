//! Helpers shared by the integration tests.

use orchestrator_core::ModelSpec;

/// A model `name` priced at $1 per million tokens either way, with an
/// 8,192-token window and no capabilities, speed or rate limits; tests
/// change what they exercise with struct-update syntax.
pub fn plain_spec(name: &str) -> ModelSpec {
    ModelSpec {
        name: name.to_owned(),
        provider: "p".to_owned(),
        capabilities: 0,
        context_length: 8192,
        input_price_per_million: 1.0,
        output_price_per_million: 1.0,
        request_fee: 0.0,
        priced: true,
        declared_speed: None,
        limits: Default::default(),
        tags: Vec::new(),
        deployment: None,
    }
}
