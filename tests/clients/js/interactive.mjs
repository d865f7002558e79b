// A conversation with one EC2 client of the AWS SDK for JavaScript v3, for tests whose next
// request depends on the last answer (ids, tokens): one request per line on stdin, one answer
// per line on stdout, until stdin closes.
//
// The first line configures the client: {"endpoint", "region", "accessKeyId", "secretAccessKey"}.
// Each later line is one of
//   {"op": "call", "command": "RunInstances", "input": {...}}
//   {"op": "wait", "waiter": "InstanceRunning", "input": {...}, "maxWaitTime": 60}
//       runs the SDK's waitUntil<waiter> with delays of 1 to 2 seconds
//   {"op": "paginate", "command": "DescribeInstances", "input": {...}, "pageSize": 5}
//       runs the SDK's paginate<command> to the end; the output is {"pages": [...]}
// and is answered {"ok": true, "output": {...}} or {"ok": false, "error": {"code", "message", "status"}}.
import * as readline from 'node:readline';
import * as ec2 from '@aws-sdk/client-ec2';

function withoutMetadata(output) {
  const { $metadata, ...rest } = output ?? {};
  return rest;
}

async function perform(client, request) {
  switch (request.op) {
    case 'call': {
      const Command = ec2[`${request.command}Command`];
      if (!Command) throw Object.assign(new Error(request.command), { name: 'UnknownCommand' });
      return withoutMetadata(await client.send(new Command(request.input ?? {})));
    }
    case 'wait': {
      const waitUntil = ec2[`waitUntil${request.waiter}`];
      if (!waitUntil) throw Object.assign(new Error(request.waiter), { name: 'UnknownWaiter' });
      const result = await waitUntil(
        { client, maxWaitTime: request.maxWaitTime ?? 60, minDelay: 1, maxDelay: 2 }, request.input ?? {});
      return { state: result.state };
    }
    case 'paginate': {
      const paginate = ec2[`paginate${request.command}`];
      if (!paginate) throw Object.assign(new Error(request.command), { name: 'UnknownPaginator' });
      const pages = [];
      for await (const page of paginate({ client, pageSize: request.pageSize }, request.input ?? {})) {
        pages.push(withoutMetadata(page));
      }
      return { pages };
    }
    default:
      throw Object.assign(new Error(String(request.op)), { name: 'UnknownOperation' });
  }
}

const lines = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
let client = null;
for await (const line of lines) {
  if (!line.trim()) continue;
  const request = JSON.parse(line);
  if (client === null) {
    client = new ec2.EC2Client({
      endpoint: request.endpoint,
      region: request.region,
      credentials: { accessKeyId: request.accessKeyId, secretAccessKey: request.secretAccessKey },
      maxAttempts: 1,
    });
    process.stdout.write(JSON.stringify({ ok: true, output: {} }) + '\n');
    continue;
  }
  let answer;
  try {
    answer = { ok: true, output: await perform(client, request) };
  } catch (error) {
    answer = {
      ok: false,
      error: {
        code: error.Code ?? error.name,
        message: error.message,
        status: error.$metadata?.httpStatusCode ?? null,
      },
    };
  }
  process.stdout.write(JSON.stringify(answer) + '\n');
}
client?.destroy();
