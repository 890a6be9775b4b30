// SPDX-License-Identifier: UNLICENSED
pragma solidity ^0.8.20;

interface IERC20Transfer {
    function transferFrom(address from, address to, uint256 value) external returns (bool);
    function transfer(address to, uint256 value) external returns (bool);
}

/// Delivery versus payment for marginet's settlement scheduler (docs/settlement.md, "On an EVM
/// chain"). The CCP's account, which deployed the contract, settles batches of legs:
///
/// - settle(batchId, ledgerSize, ledgerRoot, legs): every leg is an ERC-20 transferFrom through
///   this contract (payers approve it once); if any leg fails, the whole batch reverts and
///   nothing moves. A batch id settles at most once: a redelivery reverts with
///   BatchAlreadySettled, so a sender that resends after a crash can never pay twice.
///   settledAt[batchId] is the block that settled it (0: not settled on this chain). The event
///   carries the settlement ledger's tree head (size, RFC 6962 root) as the batch was sent: it
///   commits to the ledger entries that instructed the batch.
/// - anchor(cycleId, root): the Merkle root of a closed settlement cycle, once per cycle.
/// - lockCollateral / releaseCollateral: members' margin held by the contract, released by the
///   CCP only.
contract DvpSettlement {
    struct Leg {
        address token;
        address from;
        address to;
        uint256 amount;
    }

    address public immutable ccp;
    mapping(bytes32 => uint256) public settledAt;
    mapping(bytes32 => bytes32) public cycleRoot;
    mapping(address => mapping(address => uint256)) public locked;  // member => token => amount

    event BatchSettled(bytes32 indexed batchId, uint64 ledgerSize, bytes32 ledgerRoot, uint256 legs);
    event CycleAnchored(bytes32 indexed cycleKey, string cycleId, bytes32 root);
    event CollateralLocked(address indexed member, address indexed token, uint256 amount, uint256 total);
    event CollateralReleased(address indexed member, address indexed token, uint256 amount, uint256 total);

    error NotCcp(address caller);
    error BatchAlreadySettled(bytes32 batchId, uint256 atBlock);
    error EmptyBatch();
    error LegFailed(uint256 index, address from, address to, uint256 amount);
    error CycleAlreadyAnchored(bytes32 cycleKey, bytes32 root);
    error InsufficientLocked(address member, address token, uint256 locked, uint256 needed);
    error TransferFailed(address token);

    modifier onlyCcp() {
        if (msg.sender != ccp) revert NotCcp(msg.sender);
        _;
    }

    constructor() {
        ccp = msg.sender;
    }

    function settle(bytes32 batchId, uint64 ledgerSize, bytes32 ledgerRoot, Leg[] calldata legs) external onlyCcp {
        uint256 settledBlock = settledAt[batchId];
        if (settledBlock != 0) revert BatchAlreadySettled(batchId, settledBlock);
        if (legs.length == 0) revert EmptyBatch();
        settledAt[batchId] = block.number;
        for (uint256 i = 0; i < legs.length; ++i) {
            Leg calldata l = legs[i];
            (bool ok, bytes memory ret) =
                l.token.call(abi.encodeCall(IERC20Transfer.transferFrom, (l.from, l.to, l.amount)));
            if (!ok || (ret.length != 0 && !abi.decode(ret, (bool))) || (ret.length == 0 && l.token.code.length == 0))
                revert LegFailed(i, l.from, l.to, l.amount);
        }
        emit BatchSettled(batchId, ledgerSize, ledgerRoot, legs.length);
    }

    function anchor(string calldata cycleId, bytes32 root) external onlyCcp {
        bytes32 key = keccak256(bytes(cycleId));
        bytes32 had = cycleRoot[key];
        if (had != bytes32(0)) revert CycleAlreadyAnchored(key, had);
        cycleRoot[key] = root;
        emit CycleAnchored(key, cycleId, root);
    }

    function lockCollateral(address token, uint256 amount) external {
        if (!IERC20Transfer(token).transferFrom(msg.sender, address(this), amount)) revert TransferFailed(token);
        uint256 total = locked[msg.sender][token] + amount;
        locked[msg.sender][token] = total;
        emit CollateralLocked(msg.sender, token, amount, total);
    }

    function releaseCollateral(address member, address token, uint256 amount) external onlyCcp {
        uint256 have = locked[member][token];
        if (have < amount) revert InsufficientLocked(member, token, have, amount);
        locked[member][token] = have - amount;
        if (!IERC20Transfer(token).transfer(member, amount)) revert TransferFailed(token);
        emit CollateralReleased(member, token, amount, have - amount);
    }
}
