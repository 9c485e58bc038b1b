// Runs Segment's own mapping-kit, trigger and Pushwoosh action code over the parity corpus inputs.
//
//   SEGMENT_CHECKOUT=/path/to/action-destinations tsx evaluate.ts inputs.json outputs.json
//
// Nothing of Segment's is in this repository: every module is loaded from the checkout at run time
// (the shims/ folder only points package names at that checkout). Each input case is
// {kind, ...}; each output is the case with `expected` added. Requests never leave the process:
// nock answers every call to Pushwoosh and records the body.
import { readFileSync, writeFileSync } from 'fs'

// eslint-disable-next-line @typescript-eslint/no-var-requires
const nock = require('nock')
const checkout = process.env.SEGMENT_CHECKOUT
if (!checkout) throw new Error('set SEGMENT_CHECKOUT to an action-destinations checkout')
const core = `${checkout}/packages/core/src`
/* eslint-disable @typescript-eslint/no-var-requires */
const mappingKit = require(`${core}/mapping-kit/index.ts`)
const validateMapping = require(`${core}/mapping-kit/validate.ts`).default
const subscriptions = require(`${checkout}/packages/destination-subscriptions/src/index.ts`)
const { Destination } = require(`${core}/destination-kit/index.ts`)
const { validateSchema } = require(`${core}/schema-validation.ts`)
const { fieldsToJsonSchema } = require(`${core}/destination-kit/fields-to-jsonschema.ts`)
const pushwoosh = require(`${checkout}/packages/destination-actions/src/destinations/pushwoosh/index.ts`).default
const dayjs = require('dayjs')
/* eslint-enable @typescript-eslint/no-var-requires */

const BASE = 'https://integration-segment.svc-nue.pushwoosh.com'
const SETTINGS = { pushwooshAPIKey: 'PW_API_TOKEN_abc123', pushwooshAppCode: 'ABCDE-12345' }

type Case = { kind: string; [key: string]: unknown }

function clone<T>(value: T): T {
  return JSON.parse(JSON.stringify(value))
}

function runMapping(c: Case): unknown {
  try {
    validateMapping(clone(c.mapping))
  } catch (e) {
    return { invalid: String((e as Error).message) }
  }
  return (c.events as unknown[]).map((event) => {
    try {
      // A fresh copy of the mapping per event, as Segment gets it (some directives mutate it).
      return { value: mappingKit.transform(clone(c.mapping), clone(event)) }
    } catch (e) {
      return { error: String((e as Error).message) }
    }
  })
}

function runTrigger(c: Case): unknown {
  // A condition tree stands for a trigger written by Segment's trigger builder.
  const trigger = c.ast ? subscriptions.generateFql(c.ast) : c.trigger
  const parsed = subscriptions.parseFql(trigger)
  const error = parsed.error ? String(parsed.error.message) : null
  const matches = (c.events as unknown[]).map((event) => {
    try {
      return subscriptions.validate(parsed, clone(event))
    } catch (e) {
      return { throws: String((e as Error).message) }
    }
  })
  const result: Record<string, unknown> = { trigger, parse_error: error, matches }
  if (c.ast) result.reads_as_written = !error && sameCondition(parsed, c.ast)
  return result
}

// Whether Segment's parse of a builder trigger is the tree it was written from.
function canonicalCondition(node: any): unknown {
  if (!node || typeof node !== 'object') return node
  if (node.type === 'group') {
    if (node.children.length === 1) return canonicalCondition(node.children[0])
    return { group: node.operator, children: node.children.map(canonicalCondition) }
  }
  const valueless = ['exists', 'not_exists', 'is_true', 'is_false'].includes(node.operator)
  return [node.type, node.name ?? '', node.operator, valueless ? null : String(node.value)]
}

function sameCondition(parsed: unknown, ast: unknown): boolean {
  return JSON.stringify(canonicalCondition(parsed)) === JSON.stringify(canonicalCondition(ast))
}

async function runAction(c: Case): Promise<unknown> {
  const destination = new Destination(pushwoosh)
  const sent: { path: string; body: unknown }[] = []
  nock.cleanAll()
  nock(BASE)
    .persist()
    .post(/.*/)
    .reply(200, (uri: string, body: unknown) => {
      sent.push({ path: uri, body })
      return {}
    })
  const settings = {
    ...SETTINGS,
    subscription: { subscribe: c.trigger, partnerAction: c.action, mapping: clone(c.mapping) }
  }
  try {
    const results = await destination.onEvent(clone(c.event), settings)
    if (sent.length === 0) return { skipped: results.map((r: { output?: string }) => r.output ?? '') }
    // How dayjs reads each string timestamp sent (the fleet sends that instant as RFC 3339).
    const readings = sent.map((request) => {
      const events = (request.body as { events?: { timestamp?: unknown }[] }).events ?? []
      return events.map((e) =>
        typeof e.timestamp === 'string' && dayjs(e.timestamp).isValid() ? dayjs(e.timestamp).toISOString() : null
      )
    })
    return { requests: sent, timestamp_readings: readings }
  } catch (e) {
    return { error: String((e as Error).message) }
  }
}

async function runDelete(c: Case): Promise<unknown> {
  const destination = new Destination(pushwoosh)
  const sent: { path: string; body: unknown }[] = []
  nock.cleanAll()
  nock(BASE)
    .persist()
    .post(/.*/)
    .reply(200, (uri: string, body: unknown) => {
      sent.push({ path: uri, body })
      return {}
    })
  try {
    await destination.onDelete(clone(c.event), { ...SETTINGS })
    return { requests: sent }
  } catch (e) {
    return { error: String((e as Error).message) }
  }
}

const timestampSchema = fieldsToJsonSchema({ timestamp: { label: 'Timestamp', type: 'datetime', required: true } })

function runTimestamp(c: Case): unknown {
  // What Segment's validator accepts in a datetime field, and (for strings) the instant dayjs reads.
  let valid: boolean
  try {
    valid = validateSchema({ timestamp: clone(c.value) }, timestampSchema, { throwIfInvalid: false })
  } catch (e) {
    return { error: String((e as Error).message) }
  }
  const parsed = typeof c.value === 'string' ? dayjs(c.value) : null
  const iso = parsed && parsed.isValid() ? parsed.toISOString() : null
  return { valid, iso }
}

async function main(): Promise<void> {
  const [input, output] = process.argv.slice(2)
  nock.disableNetConnect()
  const cases: Case[] = JSON.parse(readFileSync(input, 'utf8'))
  const results = []
  for (const c of cases) {
    let expected: unknown
    if (c.kind === 'mapping') expected = runMapping(c)
    else if (c.kind === 'trigger') expected = runTrigger(c)
    else if (c.kind === 'action') expected = await runAction(c)
    else if (c.kind === 'delete') expected = await runDelete(c)
    else if (c.kind === 'timestamp') expected = runTimestamp(c)
    else if (c.kind === 'presets')
      expected = {
        presets: pushwoosh.presets,
        actions: Object.fromEntries(
          Object.entries(pushwoosh.actions).map(([slug, a]) => [
            slug,
            { title: (a as { title: string }).title, fields: (a as { fields: unknown }).fields }
          ])
        )
      }
    else throw new Error(`unknown case kind ${c.kind}`)
    results.push({ ...c, expected })
  }
  writeFileSync(output, JSON.stringify(results, null, 1) + '\n')
}

main().catch((e) => {
  console.error(e)
  process.exit(1)
})
