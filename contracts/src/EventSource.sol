// SPDX-License-Identifier: MIT
pragma solidity ^0.8.30;

/// @title EventSource
/// @notice A contract whose only job is to emit events, so the gateway's
/// listener can be demonstrated, tested and benchmarked against a real chain.
/// `burst` emits many logs per transaction: a chain with hundreds of
/// thousands of logs then needs only a few hundred blocks.
contract EventSource {
    event Transfer(address indexed from, address indexed to, uint256 value);
    event Note(uint256 indexed id, address indexed author, string text, int256 delta, bytes32 tag, bool flag);

    event Keyed(address indexed sender, string key);

    /// A custom error, so a rejection's reason can be shown decoded.
    error Refused(uint256 code, string why);
    /// `once` was already called with this key.
    error Used(string key);

    mapping(string => bool) public used;

    uint256 public notes;

    /// Emits one Transfer from the caller.
    function transfer(address to, uint256 value) external {
        emit Transfer(msg.sender, to, value);
    }

    /// Emits one Note carrying every kind of ABI value the decoder handles.
    function note(string calldata text, int256 delta, bytes32 tag, bool flag) external {
        notes += 1;
        emit Note(notes, msg.sender, text, delta, tag, flag);
    }

    /// Emits `count` Transfers with values `first`, `first + 1`, ... in one transaction.
    function burst(uint256 count, uint256 first) external {
        for (uint256 i = 0; i < count; i++) {
            // forge-lint: disable-next-line(unsafe-typecast)
            emit Transfer(msg.sender, address(uint160(i + 1)), first + i);
        }
    }

    /// Emits `Keyed(sender, key)`: a transaction that carries a request's
    /// idempotency key on chain, so a test can count how often each request
    /// was mined.
    function keyed(string calldata key) external {
        emit Keyed(msg.sender, key);
    }

    /// Always reverts with `reason`: the gateway must refuse such a call in
    /// simulation, before it takes a nonce.
    function fail(string calldata reason) external pure {
        revert(reason);
    }

    /// Emits `Keyed(sender, key)` the first time it is called with `key`
    /// and reverts with `Used(key)` after: two such calls simulate alike,
    /// and the second one mined reverts on chain.
    function once(string calldata key) external {
        if (used[key]) revert Used(key);
        used[key] = true;
        emit Keyed(msg.sender, key);
    }

    /// Always reverts with the custom error `Refused(code, why)`.
    function refuse(uint256 code, string calldata why) external pure {
        revert Refused(code, why);
    }

    /// `n / d`; with `d == 0` the call panics (Panic(0x12)), the kind of
    /// revert a failed assert or an overflow also gives.
    function divide(uint256 n, uint256 d) external pure returns (uint256) {
        return n / d;
    }
}
