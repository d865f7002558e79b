// Runs EC2 calls with the AWS SDK for JavaScript v3 and prints their outcomes as JSON.
//
// Reads one JSON document on stdin:
//   {"endpoint", "region", "accessKeyId", "secretAccessKey",
//    "calls": [{"command": "DescribeRegions", "input": {...}}, ...]}
// and prints one JSON array, an entry per call, in order:
//   {"ok": true, "output": {...}} or {"ok": false, "error": {"code", "message", "status"}}
// A later call may still run after an earlier one failed. In inputs, {"$utf8": "text"} stands
// for the bytes of that text (blob members such as ImportKeyPair's PublicKeyMaterial).
import * as ec2 from '@aws-sdk/client-ec2';

function reviveBlobs(value) {
  if (Array.isArray(value)) return value.map(reviveBlobs);
  if (value && typeof value === 'object') {
    if (Object.keys(value).length === 1 && typeof value.$utf8 === 'string') {
      return new TextEncoder().encode(value.$utf8);
    }
    return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, reviveBlobs(item)]));
  }
  return value;
}

async function readStdin() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  return JSON.parse(Buffer.concat(chunks).toString('utf8'));
}

const request = await readStdin();
const client = new ec2.EC2Client({
  endpoint: request.endpoint,
  region: request.region,
  credentials: { accessKeyId: request.accessKeyId, secretAccessKey: request.secretAccessKey },
  maxAttempts: 1, // a refused request must show its own error, not a retry's
});

const outcomes = [];
for (const { command, input } of request.calls) {
  const Command = ec2[`${command}Command`];
  if (!Command) {
    outcomes.push({ ok: false, error: { code: 'UnknownCommand', message: command, status: null } });
    continue;
  }
  try {
    const { $metadata, ...output } = await client.send(new Command(reviveBlobs(input ?? {})));
    outcomes.push({ ok: true, output });
  } catch (error) {
    outcomes.push({
      ok: false,
      error: {
        code: error.Code ?? error.name,
        message: error.message,
        status: error.$metadata?.httpStatusCode ?? null,
      },
    });
  }
}
client.destroy();
process.stdout.write(JSON.stringify(outcomes));
