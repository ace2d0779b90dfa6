// Node-RED settings of the baseline flow (flows.json), for
// tests/bench/baseline.rs. Copied next to node_modules (target/nodered) so
// that require() finds better-sqlite3 there. The flow reads MQTT_PORT (the
// broker's port) and HUDDLE_NR_DB (the SQLite file) from the environment;
// NR_PORT is the HTTP port (no editor, no admin API: nothing to click).
module.exports = {
    flowFile: 'flows.json',
    flowFilePretty: true,
    credentialSecret: false,
    uiHost: '127.0.0.1',
    uiPort: Number(process.env.NR_PORT || 1880),
    httpAdminRoot: false,
    httpNodeRoot: false,
    // The SQLite binding for the function nodes (global.get('Database')).
    functionGlobalContext: {
        Database: require('better-sqlite3'),
    },
    functionExternalModules: false,
    logging: {
        console: { level: 'info', metrics: false, audit: false },
    },
    diagnostics: { enabled: false, ui: false },
    telemetry: { enabled: false, updateNotification: false },
    runtimeState: { enabled: false, ui: false },
    editorTheme: { projects: { enabled: false } },
};
