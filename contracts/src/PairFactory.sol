// SPDX-License-Identifier: MIT
pragma solidity ^0.8.30;

/// @title Pair
/// @notice A child contract a factory creates: it emits `Swap`, the event a
/// stream that follows the factory's children records.
contract Pair {
    event Swap(address indexed sender, uint256 amount);

    /// Emits one Swap.
    function swap(uint256 amount) external {
        emit Swap(msg.sender, amount);
    }
}

/// @title PairFactory
/// @notice Creates Pairs the way Uniswap's factory does, announcing each in
/// `PairCreated(token0, token1, pair, index)`: the gateway's factory streams
/// take the children's addresses from that event's `pair` argument.
contract PairFactory {
    event PairCreated(address indexed token0, address indexed token1, address pair, uint256 index);

    address[] public pairs;

    /// Creates a Pair, swaps on it `before` times before announcing it and
    /// `afterwards` times after, all in this transaction: a stream must
    /// record the child's logs of its creation block on both sides of
    /// the announcement.
    function create(address token0, address token1, uint256 before, uint256 afterwards)
        external
        returns (address pair)
    {
        Pair p = new Pair();
        for (uint256 i = 0; i < before; i++) {
            p.swap(i);
        }
        pairs.push(address(p));
        emit PairCreated(token0, token1, address(p), pairs.length);
        for (uint256 i = 0; i < afterwards; i++) {
            p.swap(1000 + i);
        }
        return address(p);
    }
}
