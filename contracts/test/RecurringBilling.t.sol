// SPDX-License-Identifier: MIT
pragma solidity ^0.8.30;

import {TestBase} from "./Vm.sol";
import {DemoToken} from "../src/DemoToken.sol";
import {OperatorRegistry} from "../src/OperatorRegistry.sol";
import {RecurringBilling, IOperators} from "../src/RecurringBilling.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";

/// What a leaked operational key can and cannot do, and the master's
/// one-transaction rotation. Fuzzed inputs are times, amounts and callers.
contract RecurringBillingTest is TestBase {
    DemoToken token;
    OperatorRegistry registry;
    RecurringBilling billing;

    address master = address(0xA11CE);
    address controller = address(0xC0);
    address beneficiary = address(0xBEEF);
    address customer = address(0xCAFE);
    address leaked = address(0x1EAC);
    address fresh = address(0xF2E5);

    uint256 merchantId;
    uint256 constant BILL = 7;
    uint256 constant VALUE = 100e18;
    uint64 constant PERIOD = 30 days;
    uint256 t0;

    function setUp() public {
        vm.warp(1_700_000_000);
        token = new DemoToken();
        address[] memory ops = new address[](1);
        ops[0] = leaked;
        registry = new OperatorRegistry(master, ops);
        billing = new RecurringBilling(token);
        vm.prank(controller);
        merchantId = billing.registerMerchant(beneficiary, controller, IOperators(address(registry)));
        token.mint(customer, 1_000_000e18);
        vm.startPrank(customer);
        token.approve(address(billing), type(uint256).max);
        billing.allowRecurringBilling(BILL, merchantId, VALUE, PERIOD);
        vm.stopPrank();
        t0 = block.timestamp;
    }

    function chargeAs(address who) internal {
        vm.prank(who);
        billing.charge(BILL);
    }

    function testAllowChargesTheFirstPeriodToTheBeneficiary() public view {
        eq(token.balanceOf(beneficiary), VALUE, "beneficiary after allow");
        (, , , , uint64 last) = billing.billings(BILL);
        eq(last, t0, "last charge");
    }

    /// The window's edges, exactly: one second early reverts, the first
    /// and last second of the window charge, one second late cancels.
    function testWindowEdges() public {
        vm.warp(t0 + PERIOD - 1);
        vm.expectRevert(abi.encodeWithSelector(RecurringBilling.TooEarly.selector, BILL, uint64(t0 + PERIOD)));
        chargeAs(leaked);
        vm.warp(t0 + PERIOD);
        chargeAs(leaked);
        uint256 t1 = t0 + PERIOD;
        vm.warp(t1 + 2 * uint256(PERIOD));
        chargeAs(leaked);
        eq(token.balanceOf(beneficiary), 3 * VALUE, "charged at both edges");
        uint256 t2 = t1 + 2 * uint256(PERIOD);
        vm.warp(t2 + 2 * uint256(PERIOD) + 1);
        chargeAs(leaked);
        eq(token.balanceOf(beneficiary), 3 * VALUE, "one second late: canceled, not charged");
        (address c, , , , ) = billing.billings(BILL);
        eq(uint160(c), 0, "billing deleted");
    }

    function testFuzz_LeakedKeyCannotChargeEarly(uint256 dt) public {
        dt = bound(dt, 0, PERIOD - 1);
        vm.warp(t0 + dt);
        vm.expectRevert(abi.encodeWithSelector(RecurringBilling.TooEarly.selector, BILL, uint64(t0 + PERIOD)));
        chargeAs(leaked);
    }

    function testFuzz_ChargeInWindowMovesExactlyValueToBeneficiary(uint256 dt) public {
        dt = bound(dt, PERIOD, 2 * uint256(PERIOD));
        uint256 before = token.balanceOf(customer);
        vm.warp(t0 + dt);
        chargeAs(leaked);
        eq(before - token.balanceOf(customer), VALUE, "customer paid");
        eq(token.balanceOf(beneficiary), 2 * VALUE, "beneficiary received");
        eq(token.balanceOf(leaked), 0, "operator received");
    }

    function testFuzz_NoSecondChargeInAPeriod(uint256 dt, uint256 again) public {
        dt = bound(dt, PERIOD, 2 * uint256(PERIOD));
        again = bound(again, 0, PERIOD - 1);
        vm.warp(t0 + dt);
        chargeAs(leaked);
        vm.warp(t0 + dt + again);
        vm.expectRevert(abi.encodeWithSelector(RecurringBilling.TooEarly.selector, BILL, uint64(t0 + dt + PERIOD)));
        chargeAs(leaked);
    }

    function testFuzz_LapsedBillingIsCanceledNotCharged(uint256 dt) public {
        dt = bound(dt, 2 * uint256(PERIOD) + 1, 3650 days);
        vm.warp(t0 + dt);
        chargeAs(leaked);
        eq(token.balanceOf(beneficiary), VALUE, "nothing charged after the window");
        (address c, , , , ) = billing.billings(BILL);
        eq(uint160(c), 0, "billing deleted");
        vm.expectRevert(abi.encodeWithSelector(RecurringBilling.NoBilling.selector, BILL));
        chargeAs(leaked);
    }

    /// However a leaked key times its calls, the customer pays only the
    /// beneficiary, at most one value per elapsed period (plus the first).
    function testFuzz_LeakedKeyLossIsBoundedBySchedule(uint256[8] memory steps) public {
        uint256 t = t0;
        for (uint256 i = 0; i < steps.length; i++) {
            t += bound(steps[i], 0, 2 * uint256(PERIOD));
            vm.warp(t);
            vm.prank(leaked);
            try billing.charge(BILL) {} catch {}
        }
        uint256 paid = 1_000_000e18 - token.balanceOf(customer);
        eq(token.balanceOf(beneficiary), paid, "everything paid went to the beneficiary");
        ok(paid <= VALUE * (1 + (t - t0) / PERIOD), "at most one value per period");
        eq(token.balanceOf(leaked), 0, "the operator holds nothing");
    }

    function testFuzz_StrangerCannotCharge(address who, uint256 dt) public {
        vm.assume(who != leaked);
        dt = bound(dt, PERIOD, 2 * uint256(PERIOD));
        vm.warp(t0 + dt);
        vm.expectRevert(abi.encodeWithSelector(RecurringBilling.NotOperator.selector, merchantId, who));
        chargeAs(who);
    }

    function testLeakedKeyCannotRedirectPayouts() public {
        vm.prank(leaked);
        vm.expectRevert(abi.encodeWithSelector(RecurringBilling.NotController.selector, merchantId, leaked));
        billing.updateMerchant(merchantId, leaked, IOperators(address(registry)));
        vm.prank(leaked);
        vm.expectRevert(abi.encodeWithSelector(RecurringBilling.BillingExists.selector, BILL));
        billing.allowRecurringBilling(BILL, merchantId, 1, 1);
        address[] memory none = new address[](0);
        address[] memory me = new address[](1);
        me[0] = leaked;
        vm.prank(leaked);
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, leaked));
        registry.setOperators(me, none);
    }

    function testFuzz_RemovedOperatorCanDoNothing(uint256 dt) public {
        dt = bound(dt, PERIOD, 2 * uint256(PERIOD));
        address[] memory add = new address[](1);
        address[] memory remove = new address[](1);
        add[0] = fresh;
        remove[0] = leaked;
        vm.prank(master);
        registry.setOperators(add, remove);
        vm.warp(t0 + dt);
        vm.expectRevert(abi.encodeWithSelector(RecurringBilling.NotOperator.selector, merchantId, leaked));
        chargeAs(leaked);
        chargeAs(fresh);
        eq(token.balanceOf(beneficiary), 2 * VALUE, "the new operator charged");
    }

    function testMasterRotatesEveryOperatorInOneTransaction() public {
        address[] memory old = new address[](3);
        old[0] = leaked;
        old[1] = address(0x0D1);
        old[2] = address(0x0D2);
        address[] memory none = new address[](0);
        vm.prank(master);
        registry.setOperators(old, none);
        eq(registry.operatorCount(), 3, "three operators");
        address[] memory next = new address[](3);
        next[0] = address(0x0E1);
        next[1] = address(0x0E2);
        next[2] = address(0x0E3);
        vm.prank(master);
        registry.setOperators(next, old);
        for (uint256 i = 0; i < 3; i++) {
            ok(!registry.isOperator(old[i]), "old operator removed");
            ok(registry.isOperator(next[i]), "new operator added");
        }
        eq(registry.operatorCount(), 3, "three operators after rotation");
        // Repeating the rotation (a resumed `accounts rotate`) changes nothing.
        vm.prank(master);
        registry.setOperators(next, old);
        eq(registry.operatorCount(), 3, "idempotent");
    }

    function testFuzz_OnlyTheMasterSetsOperators(address who) public {
        vm.assume(who != master);
        address[] memory add = new address[](1);
        add[0] = who;
        vm.prank(who);
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, who));
        registry.setOperators(add, new address[](0));
    }

    function testCustomerCancelsAtAnyTime() public {
        vm.prank(leaked);
        vm.expectRevert(abi.encodeWithSelector(RecurringBilling.NotCustomer.selector, BILL, leaked));
        billing.cancelRecurringBilling(BILL);
        vm.prank(customer);
        billing.cancelRecurringBilling(BILL);
        vm.warp(t0 + PERIOD);
        vm.expectRevert(abi.encodeWithSelector(RecurringBilling.NoBilling.selector, BILL));
        chargeAs(leaked);
    }
}
