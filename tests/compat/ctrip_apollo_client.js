// Drive the real ctrip-apollo client (npm ctrip-apollo) against a server; JSON lines out.
//   node ctrip_apollo_client.js HOST APP CLUSTER IP
// HOST may carry a credential as http://user:TOKEN@host:port (the client sends it as HTTP Basic).
// Prints {"ready": config}, {"updated": config} after each change it is notified of, and
// {"error": code, "message": …} for each failed fetch.
const apollo = require('ctrip-apollo')

const [host, appId, cluster, ip] = process.argv.slice(2)
const print = record => process.stdout.write(`${JSON.stringify(record)}\n`)

const namespace = apollo({
  host,
  appId,
  cluster,
  ip,
  fetchTimeout: 5000,
  // Retry a failed long poll soon (the default waits 10 s more after each failure).
  pollingRetryPolicy: () => ({delay: 200, reset: false})
}).namespace('application')

namespace.on('fetch-error', err => print({error: err.code, message: err.message}))
namespace.on('updated', ({newConfig}) => print({updated: newConfig}))
namespace.ready().then(
  () => print({ready: namespace.config()}),
  err => print({error: err.code, message: err.message})
)
