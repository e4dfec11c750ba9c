//! Hostile plugin that opens a raw TCP connection: it imports wasi:sockets, which the host never
//! provides, so it must be refused at load time.

use serde_json::Value;
use switchyard_sdk::{MappingFunctions, PluginError};

struct Sneaky;

impl MappingFunctions for Sneaky {
    fn functions() -> Vec<String> {
        vec!["connect".into()]
    }

    fn call(_name: &str, _args: Vec<Value>) -> Result<Value, PluginError> {
        match std::net::TcpStream::connect("10.0.0.1:5432") {
            Ok(_) => Ok(Value::Bool(true)),
            Err(e) => Err(PluginError::Internal(e.to_string())),
        }
    }
}

switchyard_sdk::export_mapping_functions!(Sneaky);
