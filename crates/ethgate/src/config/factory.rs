//! `[streams.factory]`: a stream that follows the children a factory
//! announces. The event's argument must be an address; every problem is
//! named by its key.

use alloy_json_abi::Event;
use alloy_primitives::Address;
use ethgate_core::Factory;

use super::raw::RawFactory;
use super::validate::Issues;

/// A stream's `[streams.factory]`: the factory's address, its event, and
/// the event's argument that holds each child's address.
pub(super) fn factory(issues: &mut Issues, i: usize, f: &RawFactory) -> Option<Factory> {
    let k = |field: &str| format!("streams[{i}].factory.{field}");
    let address = match f.address.parse::<Address>() {
        Ok(a) => Some(a),
        Err(_) => {
            issues.add(
                k("address"),
                format!("{:?} is not a 20-byte hex address", f.address),
            );
            None
        }
    };
    let text = f.event.trim();
    let text = if text.starts_with("event ") {
        text.to_owned()
    } else {
        format!("event {text}")
    };
    let event = match ethgate_core::signature::check(&text).map(|()| Event::parse(&text)) {
        Ok(Ok(e)) if !e.anonymous => Some(e),
        Ok(Ok(_)) => {
            issues.add(k("event"), "anonymous events have no selector to filter on");
            None
        }
        Ok(Err(e)) => {
            issues.add(
                k("event"),
                format!("{:?} is not an event signature: {e}", f.event),
            );
            None
        }
        Err(e) => {
            issues.add(k("event"), e.to_string());
            None
        }
    }?;
    let parameter = event.inputs.iter().position(|p| p.name == f.parameter);
    match parameter {
        Some(p) if event.inputs[p].ty == "address" => Some(Factory {
            address: address?,
            event,
            parameter: p,
        }),
        Some(_) => {
            issues.add(
                k("parameter"),
                format!("argument {:?} is not an address", f.parameter),
            );
            None
        }
        None => {
            let names: Vec<&str> = event.inputs.iter().map(|p| p.name.as_str()).collect();
            issues.add(
                k("parameter"),
                format!(
                    "the event has no argument {:?}; its arguments: {names:?}",
                    f.parameter
                ),
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    fn load(factory: &str) -> Result<super::super::Config, String> {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("ethgate.toml");
        std::fs::write(
            &path,
            format!(
                "[[chains]]\nname = \"anvil\"\nchain_id = 31337\nrpc = [\"http://127.0.0.1:1\"]\n\n\
                 [[streams]]\nname = \"pairs\"\nchain = \"anvil\"\nevents = [\"Swap(address indexed sender, uint256 amount)\"]\n\
                 [streams.factory]\n{factory}\n"
            ),
        )
        .expect("config");
        super::super::load(Some(&path), std::iter::empty()).map_err(|e| e.to_string())
    }

    const EVENT: &str = "event = \"PairCreated(address indexed token0, address indexed token1, address pair, uint256)\"";

    #[test]
    fn a_factory_stream_needs_no_addresses_and_names_its_argument() {
        let cfg = load(&format!(
            "address = \"0x5fbdb2315678afecb367f032d93f642f64180aa3\"\n{EVENT}\nparameter = \"pair\""
        ))
        .expect("valid");
        let f = cfg.streams[0].factory.as_ref().expect("a factory");
        assert_eq!(f.parameter, 2);
        assert!(cfg.streams[0].addresses.is_empty());
    }

    #[test]
    fn a_bad_factory_is_refused_by_key() {
        let good = "address = \"0x5fbdb2315678afecb367f032d93f642f64180aa3\"";
        for (body, key, words) in [
            (
                format!("address = \"0x12\"\n{EVENT}\nparameter = \"pair\""),
                "streams[0].factory.address",
                "20-byte",
            ),
            (
                format!("{good}\n{EVENT}\nparameter = \"pool\""),
                "streams[0].factory.parameter",
                "no argument \"pool\"",
            ),
            (
                format!("{good}\n{EVENT}\nparameter = \"token9\""),
                "streams[0].factory.parameter",
                "its arguments",
            ),
            (
                format!("{good}\nevent = \"Created(uint256 id)\"\nparameter = \"id\""),
                "streams[0].factory.parameter",
                "not an address",
            ),
            (
                format!("{good}\nevent = \"Created(\"\nparameter = \"id\""),
                "streams[0].factory.event",
                "",
            ),
        ] {
            let e = load(&body).expect_err("refused");
            assert!(e.contains(key) && e.contains(words), "{key} / {words}: {e}");
        }
    }
}
