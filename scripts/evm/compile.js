// Compiles marginet's Solidity contracts (service/settlement/evm/contracts/*.sol) with solc-js,
// offline, into one JSON file: {"compiler": VERSION, "contracts": {NAME: {"abi": [...],
// "bytecode": "0x...", "methods": {"sig(types)": "selector hex"}}}}.
// Usage: node compile.js CONTRACTS_DIR OUT.json  (run by scripts/evm/setup.sh, with the solc
// package installed next to it in the build folder: NODE_PATH=BUILD/evm/node_modules).
'use strict';
const fs = require('fs');
const path = require('path');
const solc = require('solc');

const [dir, out] = process.argv.slice(2);
if (!dir || !out) {
  console.error('usage: node compile.js CONTRACTS_DIR OUT.json');
  process.exit(2);
}
const sources = {};
for (const f of fs.readdirSync(dir).filter((f) => f.endsWith('.sol')).sort()) {
  sources[f] = { content: fs.readFileSync(path.join(dir, f), 'utf8') };
}
const input = {
  language: 'Solidity',
  sources,
  settings: {
    optimizer: { enabled: true, runs: 200 },
    evmVersion: 'cancun',
    outputSelection: { '*': { '*': ['abi', 'evm.bytecode.object', 'evm.methodIdentifiers'] } },
  },
};
const result = JSON.parse(solc.compile(JSON.stringify(input)));
let failed = false;
for (const e of result.errors || []) {
  console.error(e.formattedMessage || e.message);
  if (e.severity === 'error') failed = true;
}
if (failed) process.exit(1);
const contracts = {};
for (const file of Object.keys(result.contracts)) {
  for (const [name, c] of Object.entries(result.contracts[file])) {
    if (!c.evm.bytecode.object) continue;  // interfaces
    contracts[name] = { abi: c.abi, bytecode: '0x' + c.evm.bytecode.object, methods: c.evm.methodIdentifiers };
  }
}
fs.writeFileSync(out + '.tmp', JSON.stringify({ compiler: solc.version(), contracts }, null, 1));
fs.renameSync(out + '.tmp', out);
console.log(`compiled ${Object.keys(contracts).join(', ')} with solc ${solc.version()} -> ${out}`);
