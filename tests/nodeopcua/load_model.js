// Load a NodeSet2 file into node-opcua's address space (after the standard nodeset) and print, on one
// line "RESULT <json>", every variable of the file's namespace that holds a value: NodeId -> browse name, data type
// and the value as node-opcua decoded it (null when it could not decode it).
//   node load_model.js MODEL.xml NAMESPACE_URI
const { AddressSpace, generateAddressSpace, nodesets, NodeClass } = require("node-opcua");

async function main() {
  const [model, uri] = process.argv.slice(2);
  const addressSpace = AddressSpace.create();
  try {
    await generateAddressSpace(addressSpace, [nodesets.standard, model]);
    const ns = addressSpace.getNamespace(uri);
    if (!ns) throw new Error(`namespace ${uri} is not in ${model}`);
    const values = {};
    for (const node of ns.nodeIterator()) {
      if (node.nodeClass !== NodeClass.Variable) continue;
      const variant = node.readValue().value;
      values[`i=${node.nodeId.value}`] = {
        browseName: node.browseName.name,
        dataType: addressSpace.findNode(node.dataType).browseName.name,
        value: variant.value === undefined ? null : variant.value,
      };
    }
    process.stdout.write("RESULT " + JSON.stringify({ namespaceIndex: ns.index, values }) + "\n");
  } finally {
    addressSpace.dispose();
  }
}

main().catch((err) => { process.stderr.write(`${err.stack || err}\n`); process.exit(1); });
