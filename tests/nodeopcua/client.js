// A node-opcua client doing what one plan (a JSON argument) asks, and printing "RESULT <json>".
//   node client.js '{"endpoint": "opc.tcp://...", "pki": "/dir", "securityMode": "SignAndEncrypt",
//                    "securityPolicy": "Basic256Sha256", "user": "otto", "password": "...",
//                    "read": ["nsu=urn:plc-anna:ua;s=AnalogNetwork.Age"],
//                    "alarms": {"wait_ms": 1500, "acknowledge": ["ScanOverrunAlarm"], "comment": "..."}}'
// The client keeps its own certificate in plan.pki (node-opcua's PKI folders: own/, trusted/, rejected/)
// and trusts any server certificate. "error" in the result holds why the connection or a step failed.
const opcua = require("node-opcua");
const { OPCUAClient, OPCUACertificateManager, MessageSecurityMode, SecurityPolicy, AttributeIds,
        constructEventFilter, resolveNodeId, ClientMonitoredItem, TimestampsToReturn } = opcua;

function variantJson(value) {
  return JSON.parse(JSON.stringify(value, (key, v) => (typeof v === "bigint" ? Number(v) : v)));
}

async function readValues(session, ids) {
  const out = {};
  const namespaces = await session.readNamespaceArray();
  for (const text of ids) {
    // "nsu=URI;s=ID": the namespace index as the server assigned it
    const match = /^nsu=([^;]+);(.*)$/.exec(text);
    const nodeId = match ? `ns=${namespaces.indexOf(match[1])};${match[2]}` : text;
    const dv = await session.read({ nodeId, attributeId: AttributeIds.Value });
    out[text] = { status: dv.statusCode.name, value: variantJson(dv.value.value) };
  }
  return out;
}

const FIELDS = ["EventId", "EventType", "SourceName", "Message", "Severity", "ConditionName", "Retain",
                "ActiveState.Id", "AckedState.Id", "ConditionId"];

async function alarms(session, plan) {
  const subscription = await session.createSubscription2({ requestedPublishingInterval: 50,
    requestedMaxKeepAliveCount: 20, publishingEnabled: true });
  const filter = constructEventFilter(FIELDS, [resolveNodeId("ConditionType"), resolveNodeId("RefreshStartEventType"),
                                               resolveNodeId("RefreshEndEventType")]);
  const events = [];
  const item = ClientMonitoredItem.create(subscription, { nodeId: resolveNodeId("Server"),
    attributeId: AttributeIds.EventNotifier }, { queueSize: 1000, filter, discardOldest: true },
    TimestampsToReturn.Neither);
  item.on("changed", (fields) => {
    const event = {};
    fields.forEach((variant, i) => { event[FIELDS[i]] = variant.value; });
    events.push(event);
  });
  await new Promise((resolve) => setTimeout(resolve, 300));
  const refreshed = await session.call({ objectId: resolveNodeId("ConditionType"),
    methodId: resolveNodeId("ConditionType_ConditionRefresh"),
    inputArguments: [{ dataType: opcua.DataType.UInt32, value: subscription.subscriptionId }] });
  await new Promise((resolve) => setTimeout(resolve, plan.wait_ms || 1500));
  const isType = (event, name) => event.EventType && event.EventType.toString() === resolveNodeId(name).toString();
  const start = events.findIndex((e) => isType(e, "RefreshStartEventType"));
  const end = events.findIndex((e) => isType(e, "RefreshEndEventType"));
  const plain = (e) => ({ condition: e.ConditionName, source: e.SourceName, message: e.Message && e.Message.text,
                          severity: e.Severity, retain: e.Retain, active: e["ActiveState.Id"],
                          acked: e["AckedState.Id"], conditionId: e.ConditionId && e.ConditionId.toString() });
  const refresh = start >= 0 && end > start ? events.slice(start + 1, end).map(plain) : null;
  const acknowledged = {};
  for (const name of plan.acknowledge || []) {
    const latest = events.filter((e) => e.ConditionName === name && e.EventId).pop();
    if (!latest) { acknowledged[name] = "no event"; continue; }
    try {
      const result = await session.call({ objectId: latest.ConditionId,
        methodId: resolveNodeId("AcknowledgeableConditionType_Acknowledge"),
        inputArguments: [{ dataType: opcua.DataType.ByteString, value: latest.EventId },
                         { dataType: opcua.DataType.LocalizedText, value: { text: plan.comment || "" } }] });
      acknowledged[name] = result.statusCode.name;
    } catch (err) {  // a refused request is a service fault: node-opcua throws it
      const match = /(Bad[A-Za-z]+)/.exec(`${err.message || err}`);
      acknowledged[name] = match ? match[1] : `${err.message || err}`;
    }
  }
  await new Promise((resolve) => setTimeout(resolve, 500));
  await subscription.terminate();
  return { refreshStatus: refreshed.statusCode.name, refresh, acknowledged, events: events.map(plain) };
}

async function main() {
  const plan = JSON.parse(process.argv[2]);
  const result = { connected: false };
  const certificateManager = new OPCUACertificateManager({ rootFolder: plan.pki,
    automaticallyAcceptUnknownCertificate: true });
  await certificateManager.initialize();
  const client = OPCUAClient.create({
    applicationName: "plc-anna interop test", applicationUri: "urn:plc-anna:node-opcua-test",
    clientCertificateManager: certificateManager, endpointMustExist: false,
    securityMode: MessageSecurityMode[plan.securityMode || "None"],
    securityPolicy: SecurityPolicy[plan.securityPolicy || "None"],
    connectionStrategy: { maxRetry: 0, initialDelay: 100, maxDelay: 200 }, requestedSessionTimeout: 10000 });
  try {
    await client.connect(plan.endpoint);
    const identity = plan.user ? { type: opcua.UserTokenType.UserName, userName: plan.user, password: plan.password }
                               : { type: opcua.UserTokenType.Anonymous };
    const session = await client.createSession(identity);
    result.connected = true;
    if (plan.read) result.values = await readValues(session, plan.read);
    if (plan.alarms) result.alarms = await alarms(session, plan.alarms);
    await session.close();
  } catch (err) {
    result.error = `${err.message || err}`;
  } finally {
    await client.disconnect();
  }
  process.stdout.write("RESULT " + JSON.stringify(result) + "\n");
}

main().catch((err) => { process.stderr.write(`${err.stack || err}\n`); process.exit(1); });
