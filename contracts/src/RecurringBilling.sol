// SPDX-License-Identifier: MIT
pragma solidity ^0.8.30;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";

/// The part of OperatorRegistry that billing relies on.
interface IOperators {
    function isOperator(address account) external view returns (bool);
}

/// @title RecurringBilling
/// @notice Subscriptions paid in one ERC-20 token, charged by a merchant's
/// back end from operational accounts. Every rule is enforced here, not in
/// the back end: a charging key that leaks can only make a charge that is
/// already due happen — never early, never more than agreed, never twice in
/// a period, never to anyone but the merchant's beneficiary.
contract RecurringBilling {
    using SafeERC20 for IERC20;

    struct Merchant {
        address beneficiary;
        address controller;
        IOperators operators;
    }

    struct Billing {
        address customer;
        uint256 merchantId;
        uint256 value;
        uint64 period;
        uint64 lastChargeAt;
    }

    event MerchantRegistered(
        uint256 indexed merchantId, address indexed controller, address beneficiary, address operators
    );
    event MerchantUpdated(uint256 indexed merchantId, address beneficiary, address operators);
    event BillingAllowed(
        uint256 indexed billingId, uint256 indexed merchantId, address indexed customer, uint256 value, uint64 period
    );
    /// `nextChargeAt` is the earliest time of the next charge; after
    /// `nextChargeAt + period` the billing lapses.
    event BillingCharged(uint256 indexed billingId, uint256 indexed merchantId, uint256 value, uint64 nextChargeAt);
    event BillingCanceled(uint256 indexed billingId, uint256 indexed merchantId);

    error UnknownMerchant(uint256 merchantId);
    error NotController(uint256 merchantId, address caller);
    error NotOperator(uint256 merchantId, address caller);
    error BillingExists(uint256 billingId);
    error NoBilling(uint256 billingId);
    error NotCustomer(uint256 billingId, address caller);
    error TooEarly(uint256 billingId, uint64 nextChargeAt);
    error InvalidTerms();

    /// The token every billing of this contract is paid in.
    IERC20 public immutable token;

    /// Merchants by id; ids start at 1.
    mapping(uint256 => Merchant) public merchants;
    uint256 public merchantCount;

    /// Active billings by the id the customer chose; a canceled billing is deleted.
    mapping(uint256 => Billing) public billings;

    constructor(IERC20 token_) {
        token = token_;
    }

    /// Registers a merchant: who is paid, who may change that, and which
    /// registry lists the accounts allowed to charge.
    function registerMerchant(address beneficiary, address controller, IOperators operators)
        external
        returns (uint256 merchantId)
    {
        if (beneficiary == address(0) || controller == address(0) || address(operators) == address(0)) {
            revert InvalidTerms();
        }
        merchantId = ++merchantCount;
        merchants[merchantId] = Merchant(beneficiary, controller, operators);
        emit MerchantRegistered(merchantId, controller, beneficiary, address(operators));
    }

    /// The merchant's controller (never an operator) moves the payouts or
    /// the registry.
    function updateMerchant(uint256 merchantId, address beneficiary, IOperators operators) external {
        Merchant storage m = merchants[merchantId];
        if (m.controller == address(0)) revert UnknownMerchant(merchantId);
        if (msg.sender != m.controller) revert NotController(merchantId, msg.sender);
        if (beneficiary == address(0) || address(operators) == address(0)) revert InvalidTerms();
        m.beneficiary = beneficiary;
        m.operators = operators;
        emit MerchantUpdated(merchantId, beneficiary, address(operators));
    }

    /// The customer (after approving this contract for the token) agrees to
    /// pay `value` every `period` seconds; the first period is charged now.
    function allowRecurringBilling(uint256 billingId, uint256 merchantId, uint256 value, uint64 period) external {
        Merchant storage m = merchants[merchantId];
        if (m.controller == address(0)) revert UnknownMerchant(merchantId);
        if (billings[billingId].customer != address(0)) revert BillingExists(billingId);
        if (value == 0 || period == 0) revert InvalidTerms();
        billings[billingId] = Billing(msg.sender, merchantId, value, period, uint64(block.timestamp));
        emit BillingAllowed(billingId, merchantId, msg.sender, value, period);
        token.safeTransferFrom(msg.sender, m.beneficiary, value);
        emit BillingCharged(billingId, merchantId, value, uint64(block.timestamp) + period);
    }

    /// Charges one period. Only the merchant's operators may call it, and
    /// only between one and two periods after the last charge; later than
    /// that the billing has lapsed and is canceled instead (no transfer).
    function charge(uint256 billingId) external {
        Billing storage b = billings[billingId];
        if (b.customer == address(0)) revert NoBilling(billingId);
        Merchant storage m = merchants[b.merchantId];
        if (!m.operators.isOperator(msg.sender)) revert NotOperator(b.merchantId, msg.sender);
        uint64 due = b.lastChargeAt + b.period;
        if (block.timestamp < due) revert TooEarly(billingId, due);
        if (block.timestamp > uint256(due) + b.period) {
            uint256 merchantId = b.merchantId;
            delete billings[billingId];
            emit BillingCanceled(billingId, merchantId);
            return;
        }
        b.lastChargeAt = uint64(block.timestamp);
        emit BillingCharged(billingId, b.merchantId, b.value, uint64(block.timestamp) + b.period);
        token.safeTransferFrom(b.customer, m.beneficiary, b.value);
    }

    /// The customer, or the merchant's controller, ends the billing.
    function cancelRecurringBilling(uint256 billingId) external {
        Billing storage b = billings[billingId];
        if (b.customer == address(0)) revert NoBilling(billingId);
        uint256 merchantId = b.merchantId;
        if (msg.sender != b.customer && msg.sender != merchants[merchantId].controller) {
            revert NotCustomer(billingId, msg.sender);
        }
        delete billings[billingId];
        emit BillingCanceled(billingId, merchantId);
    }
}
