// SPDX-License-Identifier: UNLICENSED
pragma solidity ^0.8.20;

interface IERC20Htlc {
    function transferFrom(address from, address to, uint256 value) external returns (bool);
    function transfer(address to, uint256 value) external returns (bool);
}

/// A hashed timelock for one leg of a cross-chain settlement (docs/settlement.md, "Across
/// chains"). The sender locks `amount` of `token` for `receiver` under a SHA-256 hashlock:
/// the receiver (or anyone on its behalf) claims it before `timelock` (Unix seconds, block
/// time) by revealing the preimage, which the Claimed event publishes for the other chain;
/// after `timelock` only a refund to the sender is possible (anyone may trigger it: the tokens
/// go to the sender). Each lock id is used once; a lock for the zero address is refused.
contract Htlc {
    enum State { None, Locked, Claimed, Refunded }

    struct Lock {
        address sender;
        address receiver;
        address token;
        uint256 amount;
        bytes32 hashlock;
        uint64 timelock;
        State state;
    }

    mapping(bytes32 => Lock) public locks;

    event Locked(bytes32 indexed id, address indexed sender, address indexed receiver, address token,
                 uint256 amount, bytes32 hashlock, uint64 timelock);
    event Claimed(bytes32 indexed id, bytes32 preimage);
    event Refunded(bytes32 indexed id);

    error LockExists(bytes32 id);
    error NoSuchLock(bytes32 id);
    error NotLocked(bytes32 id, State state);
    error TimelockInPast(uint64 timelock, uint256 now_);
    error WrongPreimage(bytes32 id);
    error Expired(bytes32 id, uint64 timelock);
    error NotExpired(bytes32 id, uint64 timelock);
    error ZeroAmount();
    error ZeroReceiver();
    error TransferFailed(address token);

    function lock(bytes32 id, address receiver, address token, uint256 amount, bytes32 hashlock, uint64 timelock)
        external
    {
        if (locks[id].state != State.None) revert LockExists(id);
        if (amount == 0) revert ZeroAmount();
        if (receiver == address(0)) revert ZeroReceiver();
        if (timelock <= block.timestamp) revert TimelockInPast(timelock, block.timestamp);
        locks[id] = Lock(msg.sender, receiver, token, amount, hashlock, timelock, State.Locked);
        if (!IERC20Htlc(token).transferFrom(msg.sender, address(this), amount)) revert TransferFailed(token);
        emit Locked(id, msg.sender, receiver, token, amount, hashlock, timelock);
    }

    function claim(bytes32 id, bytes32 preimage) external {
        Lock storage l = locks[id];
        if (l.state == State.None) revert NoSuchLock(id);
        if (l.state != State.Locked) revert NotLocked(id, l.state);
        if (sha256(abi.encodePacked(preimage)) != l.hashlock) revert WrongPreimage(id);
        if (block.timestamp >= l.timelock) revert Expired(id, l.timelock);
        l.state = State.Claimed;
        if (!IERC20Htlc(l.token).transfer(l.receiver, l.amount)) revert TransferFailed(l.token);
        emit Claimed(id, preimage);
    }

    function refund(bytes32 id) external {
        Lock storage l = locks[id];
        if (l.state == State.None) revert NoSuchLock(id);
        if (l.state != State.Locked) revert NotLocked(id, l.state);
        if (block.timestamp < l.timelock) revert NotExpired(id, l.timelock);
        l.state = State.Refunded;
        if (!IERC20Htlc(l.token).transfer(l.sender, l.amount)) revert TransferFailed(l.token);
        emit Refunded(id);
    }
}
