// SPDX-License-Identifier: MIT
pragma solidity ^0.8.30;

/// The few Foundry cheatcodes the tests use, declared here so the tests
/// need no library beyond OpenZeppelin (everything comes from npm).
interface Vm {
    function prank(address sender) external;
    function startPrank(address sender) external;
    function stopPrank() external;
    function warp(uint256 timestamp) external;
    function expectRevert(bytes calldata revertData) external;
    function expectRevert() external;
    function assume(bool condition) external;
}

/// Base of the test contracts: the cheatcode handle and assertions that
/// revert (a reverting test fails) with the values that differed.
abstract contract TestBase {
    Vm internal constant vm = Vm(address(uint160(uint256(keccak256("hevm cheat code")))));

    error NotEqual(string what, uint256 got, uint256 want);
    error NotTrue(string what);

    function eq(uint256 got, uint256 want, string memory what) internal pure {
        if (got != want) revert NotEqual(what, got, want);
    }

    function ok(bool cond, string memory what) internal pure {
        if (!cond) revert NotTrue(what);
    }

    /// `x` mapped into [lo, hi], keeping the fuzzer's favourite edges at
    /// the edges: 0..3 map to lo.., max-3..max to ..hi, so boundaries of
    /// the range are tried every run rather than by chance.
    function bound(uint256 x, uint256 lo, uint256 hi) internal pure returns (uint256) {
        uint256 size = hi - lo + 1;
        if (x < 4 && x < size) return lo + x;
        uint256 fromTop = type(uint256).max - x;
        if (fromTop < 4 && fromTop < size) return hi - fromTop;
        return lo + (x % size);
    }
}
