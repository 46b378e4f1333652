// Drives the real Node Nacos client (npm `nacos`, NacosConfigClient) and prints what it sees,
// one JSON line per event: {"content": …} for a read and each change, {"error": …}.
//
// Usage: node nacos_node_client.js PORT DATA_ID GROUP get|watch, with NACOS_USERNAME and
// NACOS_PASSWORD in the environment when it signs in, NACOS_CACHE_DIR for its snapshots.
'use strict';

const { NacosConfigClient } = require('nacos');

const [port, dataId, group, mode] = process.argv.slice(2);
const say = (event) => process.stdout.write(JSON.stringify(event) + '\n');

const options = {
  serverAddr: `127.0.0.1:${port}`,
  namespace: '',
  requestTimeout: 2000,
  cacheDir: process.env.NACOS_CACHE_DIR,
};
if (process.env.NACOS_USERNAME) {
  options.username = process.env.NACOS_USERNAME;
  options.password = process.env.NACOS_PASSWORD;
}
const client = new NacosConfigClient(options);
// While the server restarts the client reports errors and retries: only the first read's
// failure is the answer.
client.on('error', (err) => say({ warning: String(err && err.message) }));
process.on('SIGTERM', () => process.exit(0));

(async () => {
  try {
    say({ content: await client.getConfig(dataId, group) });
  } catch (err) {
    say({ error: String(err && err.message) });
    process.exit(1);
  }
  if (mode === 'watch') {
    client.subscribe({ dataId, group }, (content) => say({ content }));
  } else {
    process.exit(0);
  }
})();
