// Drives the real npm cloud-config-client (unchanged) once: `node spring_client.js OPTIONS_JSON`
// loads with those options and prints one JSON line, {"properties":{…}} or {"error":"…"}.
'use strict'

const client = require('cloud-config-client')

const options = JSON.parse(process.argv[2])
client.load(options).then(
  (config) => {
    console.log(JSON.stringify({ properties: config.properties }))
  },
  (error) => {
    console.log(JSON.stringify({ error: String(error && error.message) }))
  }
)
