// SPDX-License-Identifier: MIT
pragma solidity ^0.8.30;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/// @title DemoToken
/// @notice The token the billing demo and tests are paid in. Anyone may mint:
/// it exists only on development chains.
contract DemoToken is ERC20 {
    constructor() ERC20("Demo Dollar", "DEMO") {}

    /// Mints `amount` to `to`, for demos and tests.
    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }
}
