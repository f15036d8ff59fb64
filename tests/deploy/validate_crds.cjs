// Validates prometheus-operator resources (ServiceMonitor, PrometheusRule) against the CRD schemas shipped in
// the @kubernetes-models/prometheus-operator package. Usage: node validate_crds.cjs MODELS_DIR FILE.json
// where FILE.json holds a list of objects. Prints one line per object; exits 1 if any is invalid.
const path = require("path");
const fs = require("fs");
const [modelsDir, file] = process.argv.slice(2);
const v1 = require(path.join(modelsDir, "node_modules/@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1"));
let failed = 0;
for (const obj of JSON.parse(fs.readFileSync(file, "utf8"))) {
  const Model = v1[obj.kind];
  if (!Model) { console.log(`UNKNOWN ${obj.kind}`); failed++; continue; }
  try {
    new Model(obj).validate();
    console.log(`VALID ${obj.kind} ${obj.metadata.name}`);
  } catch (err) {
    console.log(`INVALID ${obj.kind} ${obj.metadata.name}: ${err.message}`);
    failed++;
  }
}
process.exit(failed ? 1 : 0);
