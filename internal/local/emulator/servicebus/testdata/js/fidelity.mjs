// Fidelity check: the official JavaScript client (@azure/service-bus, on rhea) against
// the Go emulator. Run by js_test.go with SB_CONNECTION set; prints one line per check
// and exits non-zero on the first failure.
import { ServiceBusClient } from "@azure/service-bus";

const conn = process.env.SB_CONNECTION;
if (!conn) {
  console.error("SB_CONNECTION is not set");
  process.exit(2);
}

function check(cond, what) {
  if (!cond) {
    throw new Error(`check failed: ${what}`);
  }
  console.log(`ok ${what}`);
}

const client = new ServiceBusClient(conn, { retryOptions: { maxRetries: 1, retryDelayInMs: 50, timeoutInMs: 10000 } });
try {
  // send + peek-lock receive + complete
  const sender = client.createSender("plain");
  await sender.sendMessages({ body: "from-js", applicationProperties: { k: "v" } });
  await sender.sendMessages([{ body: "b1" }, { body: "b2" }]); // a batch
  const receiver = client.createReceiver("plain");
  const got = [];
  while (got.length < 3) {
    const msgs = await receiver.receiveMessages(3, { maxWaitTimeInMs: 2000 });
    for (const m of msgs) {
      got.push(m);
    }
  }
  check(got[0].body === "from-js" && got[0].applicationProperties.k === "v", "send and receive a message");
  check(got[0].deliveryCount === 0, "deliveryCount is the header value 0, not undefined");
  check(typeof got[0].sequenceNumber !== "undefined" && got[0].lockedUntilUtc instanceof Date, "broker annotations present");
  check(got[1].body === "b1" && got[2].body === "b2", "batch messages arrive in order");
  for (const m of got) {
    await receiver.completeMessage(m);
  }
  check(true, "complete");

  // abandon + redelivery count, then dead-letter
  await sender.sendMessages({ body: "to-dlq" });
  let [m] = await receiver.receiveMessages(1, { maxWaitTimeInMs: 5000 });
  await receiver.abandonMessage(m);
  [m] = await receiver.receiveMessages(1, { maxWaitTimeInMs: 5000 });
  check(m.body === "to-dlq" && m.deliveryCount === 1, "abandon redelivers with deliveryCount 1");
  await receiver.deadLetterMessage(m, { deadLetterReason: "js-reason", deadLetterErrorDescription: "js-desc" });
  const dlq = client.createReceiver("plain", { subQueueType: "deadLetter", receiveMode: "receiveAndDelete" });
  const [d] = await dlq.receiveMessages(1, { maxWaitTimeInMs: 5000 });
  check(d && d.deadLetterReason === "js-reason" && d.deadLetterErrorDescription === "js-desc", "dead-letter with reason");

  // schedule + cancel
  const seqs = await sender.scheduleMessages({ body: "later" }, new Date(Date.now() + 3600_000));
  check(seqs.length === 1, "schedule a message");
  await sender.cancelScheduledMessages(seqs);
  check(true, "cancel a scheduled message");

  // peek
  await sender.sendMessages({ body: "peeked" });
  const peeked = await receiver.peekMessages(5);
  check(peeked.length === 1 && peeked[0].body === "peeked", "peek");
  const [p] = await receiver.receiveMessages(1, { maxWaitTimeInMs: 5000 });
  await receiver.renewMessageLock(p);
  await receiver.completeMessage(p);
  check(true, "renew lock and complete");

  // sessions: the JS client sends the session filter as a bare string
  const ssender = client.createSender("sessions");
  await ssender.sendMessages([{ body: "s-1", sessionId: "js-s" }, { body: "s-2", sessionId: "js-s" }]);
  const sr = await client.acceptSession("sessions", "js-s");
  check(sr.sessionId === "js-s", "accept a named session");
  const smsgs = [];
  while (smsgs.length < 2) {
    smsgs.push(...(await sr.receiveMessages(2, { maxWaitTimeInMs: 2000 })));
  }
  check(smsgs[0].body === "s-1" && smsgs[1].body === "s-2", "session messages in order");
  for (const sm of smsgs) {
    await sr.completeMessage(sm);
  }
  await sr.setSessionState("js-state");
  const state = await sr.getSessionState();
  check(state !== undefined && Buffer.from(state).toString() === "js-state", "session state round trip");
  await sr.renewSessionLock();
  check(true, "renew session lock");
  await sr.close();

  await ssender.sendMessages({ body: "next", sessionId: "js-next" });
  const nr = await client.acceptNextSession("sessions");
  check(nr.sessionId === "js-next", "accept the next session");
  const [nm] = await nr.receiveMessages(1, { maxWaitTimeInMs: 5000 });
  await nr.completeMessage(nm);
  await nr.close();

  // The accept wait is the client's operation timeout (sent as com.microsoft:timeout).
  const quick = new ServiceBusClient(conn, { retryOptions: { maxRetries: 0, timeoutInMs: 1500 } });
  let timedOut = false;
  try {
    await quick.acceptNextSession("sessions");
    console.log("accept next returned a session although none had messages");
  } catch (e) {
    timedOut = e.code === "ServiceTimeout";
    if (!timedOut) console.log(`accept next failed with ${e.code}: ${e.message}`);
  } finally {
    await quick.close();
  }
  check(timedOut, "accept next session times out when none is available");

  // topic fan-out
  await client.createSender("events").sendMessages({ body: "evt" });
  for (const sub of ["a", "b"]) {
    const r = client.createReceiver("events", sub, { receiveMode: "receiveAndDelete" });
    const [e] = await r.receiveMessages(1, { maxWaitTimeInMs: 5000 });
    check(e && e.body === "evt", `subscription ${sub} receives the event`);
  }
  console.log("js fidelity: all checks passed");
} catch (e) {
  console.error(`FAILED: ${e.code ?? ""} ${e.stack ?? e}`);
  process.exitCode = 1;
} finally {
  await client.close().catch((e) => console.error(`close: ${e.message}`));
}
