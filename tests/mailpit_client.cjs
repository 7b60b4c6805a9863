// Drive a third-party Mailpit API client (tests/vendor/mailpit-api) against
// smtpscope's API at argv[2]: each call's result, or its error, as one JSON
// object on stdout (integ_api's MailpitClientTest asserts on it).
"use strict";
const { MailpitClient } = require("./vendor/mailpit-api/index.cjs");

async function main() {
  const mp = new MailpitClient(process.argv[2]);
  const out = {};
  const step = async (name, f) => {
    try {
      out[name] = await f();
    } catch (e) {
      out[name] = { ERROR: String((e && e.message) || e) };
    }
  };
  await step("info", () => mp.getInfo());
  await step("webui", () => mp.getConfiguration());
  await step("waited", () => mp.waitForMessages({ query: "subject:Köln", count: 2 }, { timeout: 10000, interval: 100 }));
  await step("list", () => mp.listMessages());
  const id = out.list.messages ? out.list.messages[0].ID : "none";
  await step("summary", () => mp.getMessageSummary(id));
  await step("latest", () => mp.getMessageSummary());
  await step("headers", () => mp.getMessageHeaders(id));
  await step("source", () => mp.getMessageSource(id));
  const att = out.summary.Attachments ? out.summary.Attachments[0] : { PartID: "none" };
  await step("attachment", async () => {
    const blob = await mp.getMessageAttachment(id, att.PartID);
    return { type: blob.type, base64: Buffer.from(await blob.arrayBuffer()).toString("base64") };
  });
  await step("search", () => mp.searchMessages({ query: 'from:juergen "aus Köln" has:attachment' }));
  await step("html", () => mp.renderMessageHTML(id));
  await step("text", () => mp.renderMessageText(id));
  await step("unread", () => mp.setReadStatus({ IDs: [id], Read: false }));
  await step("list_unread", () => mp.listMessages());
  await step("wait_one", () => mp.waitForMessage({ query: "subject:2" }, { timeout: 5000, interval: 100 }));
  await step("delete_search", () => mp.deleteMessagesBySearch({ query: "subject:2" }));
  await step("after_search_delete", () => mp.listMessages());
  await step("delete_all", () => mp.deleteMessages());
  await step("after_delete", () => mp.listMessages());
  await step("missing", () => mp.getMessageSummary("nosuchid"));
  process.stdout.write(JSON.stringify(out) + "\n");
}

main().catch((e) => {
  process.stderr.write(String((e && e.stack) || e) + "\n");
  process.exit(1);
});
