// SPDX-License-Identifier: MIT
pragma solidity ^0.8.30;

import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";

/// @title OperatorRegistry
/// @notice The set of operational ("hot") accounts allowed to trigger a
/// merchant's charges. It is owned by a master account (a multisig or a
/// hardware wallet) that never signs routine work: when an operational key
/// leaks, or simply on schedule, the master replaces the whole set in one
/// `setOperators` transaction and the old keys can do nothing any more.
contract OperatorRegistry is Ownable {
    /// An address became an operator.
    event OperatorAdded(address indexed operator);
    /// An address stopped being an operator.
    event OperatorRemoved(address indexed operator);

    /// An address listed as both added and removed, or the zero address.
    error InvalidOperator(address operator);

    mapping(address => bool) private operators;

    /// Number of current operators, so a watcher can check a rotation
    /// without replaying events.
    uint256 public operatorCount;

    constructor(address master, address[] memory initial) Ownable(master) {
        _apply(initial, new address[](0));
    }

    /// True when `account` may trigger charges.
    function isOperator(address account) external view returns (bool) {
        return operators[account];
    }

    /// Removes `remove` and adds `add`, atomically: a rotation is one
    /// transaction, so there is never a moment with both sets or neither.
    /// Re-adding a current operator or removing a stranger changes nothing
    /// and emits nothing, which makes a retried rotation harmless.
    function setOperators(address[] calldata add, address[] calldata remove) external onlyOwner {
        _apply(add, remove);
    }

    function _apply(address[] memory add, address[] memory remove) private {
        for (uint256 i = 0; i < remove.length; i++) {
            address r = remove[i];
            for (uint256 j = 0; j < add.length; j++) {
                if (add[j] == r) revert InvalidOperator(r);
            }
            if (operators[r]) {
                operators[r] = false;
                operatorCount -= 1;
                emit OperatorRemoved(r);
            }
        }
        for (uint256 i = 0; i < add.length; i++) {
            address a = add[i];
            if (a == address(0)) revert InvalidOperator(a);
            if (!operators[a]) {
                operators[a] = true;
                operatorCount += 1;
                emit OperatorAdded(a);
            }
        }
    }
}
