//! The bindings agree with the artifacts they came from and with solc's
//! selectors, and the creation code is there for deployments.

use alloy_sol_types::{SolCall, SolEvent};
use ethgate_contracts::{OperatorRegistry, RecurringBilling};

#[test]
fn selectors_match_the_solidity_signatures() {
    assert_eq!(
        OperatorRegistry::setOperatorsCall::SIGNATURE,
        "setOperators(address[],address[])"
    );
    assert_eq!(RecurringBilling::chargeCall::SIGNATURE, "charge(uint256)");
    assert_eq!(
        RecurringBilling::BillingCharged::SIGNATURE,
        "BillingCharged(uint256,uint256,uint256,uint64)"
    );
    assert!(!OperatorRegistry::BYTECODE.is_empty());
    assert!(!RecurringBilling::BYTECODE.is_empty());
}
