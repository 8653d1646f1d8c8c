// A price-oracle peer written against protocol/PROTOCOL.md alone, on js-libp2p: it joins the
// gossip topic through one of our nodes, checks every message it receives with its own decoder and
// its own secp256k1/keccak libraries, publishes prices of its own for our nodes to co-sign, and
// prints what it saw as JSON lines on stdout. It stops by itself after --run-for-ms.
//
//   node peer.mjs --bootstrap /ip4/127.0.0.1/tcp/4001/p2p/16U... --topic price-oracle/0123abcd...
//     --network-id 0x... --network name --feed ETH/USD --decimals 8 --quorum 3
//     --signers 0xaa...,0xbb... --key 0x<32 bytes> --price 3012.45
//     [--publish-every-ms 5000] [--publishes 3] [--run-for-ms 30000]

import { parseArgs } from 'node:util'

import { hmac } from '@noble/hashes/hmac.js'
import { sha256 } from '@noble/hashes/sha2.js'
import { keccak_256 } from '@noble/hashes/sha3.js'
import { bytesToHex, concatBytes, hexToBytes, utf8ToBytes } from '@noble/hashes/utils.js'
import * as secp from '@noble/secp256k1'

// js-libp2p 3 calls Promise.withResolvers, which Node only has from 22 on. It must exist before
// libp2p's modules load, hence the dynamic imports below.
Promise.withResolvers ??= function withResolvers () {
  let resolve, reject
  const promise = new Promise((res, rej) => { resolve = res; reject = rej })
  return { promise, resolve, reject }
}
const { createLibp2p } = await import('libp2p')
const { tcp } = await import('@libp2p/tcp')
const { noise } = await import('@chainsafe/libp2p-noise')
const { yamux } = await import('@chainsafe/libp2p-yamux')
const { identify } = await import('@libp2p/identify')
const { gossipsub, TopicValidatorResult } = await import('@libp2p/gossipsub')
const { privateKeyFromRaw } = await import('@libp2p/crypto/keys')
const { multiaddr } = await import('@multiformats/multiaddr')

// Synchronous RFC 6979 signing needs these two.
secp.hashes.sha256 = sha256
secp.hashes.hmacSha256 = (key, message) => hmac(sha256, key, message)

// --- The wire format and signed bytes, from PROTOCOL.md -------------------------------------

const DOMAIN = utf8ToBytes('price-oracle:v1\n')
const CONFIG_DOMAIN = utf8ToBytes('price-oracle:config:v1\n')
const VERSION = 2
const HEADER_LEN = 91
const ENTRY_LEN = 20 + 65
const MAX_SIGNATURES = 16
const NONCE_LEN = 8
const MAX_MESSAGE_LEN = HEADER_LEN + MAX_SIGNATURES * ENTRY_LEN + NONCE_LEN
const MAX_DECIMALS = 38
const CURVE_ORDER = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n
const HALF_ORDER = CURVE_ORDER >> 1n

const bigEndian = (value, size) => {
  const out = new Uint8Array(size)
  let rest = BigInt(value)
  for (let i = size - 1; i >= 0; i--) {
    out[i] = Number(rest & 0xffn)
    rest >>= 8n
  }
  if (rest !== 0n) throw new Error(`${value} does not fit ${size} bytes`)
  return out
}
const readBigEndian = (bytes) => bytes.reduce((n, b) => (n << 8n) | BigInt(b), 0n)
const hex = (bytes) => '0x' + bytesToHex(bytes)
const fromHex = (text) => hexToBytes(text.replace(/^0x/, ''))
const equal = (a, b) => a.length === b.length && a.every((x, i) => x === b[i])

function paddedFeed (name) {
  const bytes = utf8ToBytes(name)
  if (bytes.length < 1 || bytes.length > 16) throw new Error(`feed ${name} is not 1 to 16 bytes`)
  return concatBytes(bytes, new Uint8Array(16 - bytes.length))
}

/** The last 20 bytes of keccak256 of the uncompressed public key without its 0x04 tag. */
const addressOf = (uncompressed) => keccak_256(uncompressed.subarray(1)).subarray(12)

function networkIdOf ({ network, feed, decimals, quorum, signers }) {
  const name = utf8ToBytes(network)
  const sorted = [...signers].sort((a, b) => Buffer.compare(a, b))
  return keccak_256(concatBytes(
    CONFIG_DOMAIN, Uint8Array.of(name.length), name, paddedFeed(feed), Uint8Array.of(decimals),
    bigEndian(quorum, 4), Uint8Array.of(1), bigEndian(sorted.length, 4), ...sorted))
}

function signedBytes (networkId, body) {
  return concatBytes(DOMAIN, networkId, bigEndian(body.id, 16), body.feed, bigEndian(body.price, 16),
    Uint8Array.of(body.decimals), bigEndian(body.observedAtMs, 8))
}

// The price id: 48 bits ms ‖ version 7 ‖ 12-bit sequence ‖ variant 0b10 ‖ 62 bits of the origin.
const ORIGIN_MASK = (1n << 62n) - 1n
const originBits = (address) => readBigEndian(address.subarray(0, 8)) >> 2n
const mintId = (ms, sequence, origin) =>
  ((BigInt(ms) & ((1n << 48n) - 1n)) << 80n) | (7n << 76n) | (BigInt(sequence & 0xfff) << 64n) |
  (2n << 62n) | originBits(origin)
const isWellFormed = (id) => ((id >> 76n) & 0xfn) === 7n && ((id >> 62n) & 3n) === 2n
const idText = (id) => {
  const h = id.toString(16).padStart(32, '0')
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`
}

/** `nonce`: 8 bytes drawn at random for each send; not signed. */
function encode (networkId, body, signatures, nonce = crypto.getRandomValues(new Uint8Array(NONCE_LEN))) {
  const sorted = [...signatures].sort((a, b) => Buffer.compare(a.signer, b.signer))
  return concatBytes(Uint8Array.of(VERSION), networkId, bigEndian(body.id, 16), body.feed,
    bigEndian(body.price, 16), Uint8Array.of(body.decimals), bigEndian(body.observedAtMs, 8),
    Uint8Array.of(sorted.length), ...sorted.flatMap(({ signer, signature }) => [signer, signature]),
    nonce)
}

/** The message in `bytes`, or an Error naming the first rule it breaks. */
function decode (bytes) {
  if (bytes.length > MAX_MESSAGE_LEN) throw new Error(`${bytes.length} bytes, more than ${MAX_MESSAGE_LEN}`)
  if (bytes.length < HEADER_LEN) throw new Error('truncated header')
  if (bytes[0] !== VERSION) throw new Error(`version ${bytes[0]}`)
  const feed = bytes.slice(49, 65)
  const length = feed.indexOf(0) === -1 ? 16 : feed.indexOf(0)
  if (length === 0 || !feed.subarray(0, length).every((b) => b > 0x20 && b < 0x7f) ||
      !feed.subarray(length).every((b) => b === 0)) throw new Error('feed is not zero-padded printable ASCII')
  const decimals = bytes[81]
  if (decimals > MAX_DECIMALS) throw new Error(`${decimals} decimals`)
  const count = bytes[90]
  if (count < 1 || count > MAX_SIGNATURES) throw new Error(`${count} signatures`)
  const expected = HEADER_LEN + count * ENTRY_LEN + NONCE_LEN
  if (bytes.length < expected) throw new Error('truncated')
  if (bytes.length > expected) throw new Error('trailing bytes')
  const signatures = []
  for (let i = 0; i < count; i++) {
    const at = HEADER_LEN + i * ENTRY_LEN
    const signer = bytes.slice(at, at + 20)
    const previous = signatures.at(-1)?.signer
    if (previous !== undefined) {
      const order = Buffer.compare(previous, signer)
      if (order === 0) throw new Error('a signer is listed twice')
      if (order > 0) throw new Error('signers are not ascending')
    }
    signatures.push({ signer, signature: bytes.slice(at + 20, at + ENTRY_LEN) })
  }
  return {
    networkId: bytes.slice(1, 33),
    body: {
      id: readBigEndian(bytes.subarray(33, 49)),
      feed,
      price: readBigEndian(bytes.subarray(65, 81)),
      decimals,
      observedAtMs: readBigEndian(bytes.subarray(82, 90))
    },
    signatures,
    nonce: bytes.slice(expected - NONCE_LEN)
  }
}

/** r ‖ s ‖ v with v = 27 + parity and low s, over the digest itself (no prefix, no prehash). */
function sign (digest, secret) {
  const recovered = secp.sign(digest, secret, { prehash: false, lowS: true, format: 'recovered' })
  return concatBytes(recovered.subarray(1), Uint8Array.of(27 + recovered[0]))
}

/** The address the 65-byte signature recovers to over `digest`, or an Error why it cannot. */
function recoverSigner (digest, signature) {
  const v = signature[64]
  if (v !== 27 && v !== 28) throw new Error(`v is ${v}`)
  if (readBigEndian(signature.subarray(32, 64)) > HALF_ORDER) throw new Error('high s')
  const recovered = concatBytes(Uint8Array.of(v - 27), signature.subarray(0, 64))
  return addressOf(secp.recoverPublicKey(recovered, digest, { prehash: false, isCompressed: false }))
}

// --- Settings ---------------------------------------------------------------------------------

const { values: args } = parseArgs({
  options: {
    bootstrap: { type: 'string' },
    topic: { type: 'string' },
    'network-id': { type: 'string' },
    network: { type: 'string' },
    feed: { type: 'string', default: 'ETH/USD' },
    decimals: { type: 'string', default: '8' },
    quorum: { type: 'string', default: '3' },
    signers: { type: 'string' },
    key: { type: 'string' },
    price: { type: 'string' },
    'publish-every-ms': { type: 'string', default: '5000' },
    publishes: { type: 'string', default: '3' },
    'run-for-ms': { type: 'string', default: '30000' }
  }
})
for (const required of ['bootstrap', 'topic', 'network-id', 'network', 'signers', 'key', 'price']) {
  if (args[required] === undefined) throw new Error(`--${required} is required`)
}

const say = (event) => console.log(JSON.stringify(event))
const startedAt = Date.now()
const decimals = Number(args.decimals)
const feed = paddedFeed(args.feed)
const quorum = Number(args.quorum)
const networkId = fromHex(args['network-id'])
const allowlist = args.signers.split(',').map(fromHex)
const allowed = (signer) => allowlist.some((a) => equal(a, signer))
const secret = fromHex(args.key)
const me = addressOf(secp.getPublicKey(secret, false))
const expectedTopic = 'price-oracle/' + bytesToHex(networkId.subarray(0, 8))

/** A plain decimal like 3012.45 in units of 10^-decimals, truncated past the last kept digit. */
function units (text) {
  const [whole, fraction = ''] = text.split('.')
  return BigInt(whole + fraction.padEnd(decimals, '0').slice(0, decimals))
}
const price = units(args.price)

// --- What this peer saw ---------------------------------------------------------------------

const seen = {
  received: 0,
  verified: 0,
  failures: [],
  byOrigin: {},
  /** Message ids this peer asked for with IWANT after our nodes' IHAVE. */
  askedFor: new Set(),
  /** Verified messages that answered one of those IWANTs, and when the last one came. */
  gossiped: 0,
  lastGossipedAt: null,
  published: [],
  /** The signers seen on each of this peer's own prices, over every copy that reached it. */
  ownSigners: new Map(),
  /** This peer's lowest score of the node it joined through, sampled every heartbeat. */
  lowestBootstrapScore: null
}

/** Every check a receiver can make without state, in the order of PROTOCOL.md. */
function verify (bytes) {
  const message = decode(bytes)
  if (!equal(encode(message.networkId, message.body, message.signatures, message.nonce), bytes)) throw new Error('not canonical')
  const { body, signatures } = message
  if (!equal(message.networkId, networkId)) throw new Error('another network id')
  if (!equal(body.feed, feed) || body.decimals !== decimals) throw new Error('another feed or decimals')
  if (!isWellFormed(body.id)) throw new Error('id is not UUIDv7-shaped')
  if (body.id >> 80n !== (body.observedAtMs & ((1n << 48n) - 1n))) throw new Error('id time is not the observation time')
  const stranger = signatures.find(({ signer }) => !allowed(signer))
  if (stranger) throw new Error(`signer ${hex(stranger.signer)} is not allowed`)
  const origin = signatures.find(({ signer }) => originBits(signer) === (body.id & ORIGIN_MASK))
  if (!origin) throw new Error('no signer is the origin the id names')
  const digest = keccak_256(signedBytes(message.networkId, body))
  for (const { signer, signature } of signatures) {
    const recovered = recoverSigner(digest, signature)
    if (!equal(recovered, signer)) throw new Error(`signature of ${hex(signer)} recovers to ${hex(recovered)}`)
  }
  return { id: body.id, origin: origin.signer, signers: signatures.map(({ signer }) => hex(signer)), ageMs: Date.now() - Number(body.observedAtMs) }
}

function onMessage (bytes) {
  seen.received++
  try {
    const { id, origin, signers, ageMs } = verify(bytes)
    seen.verified++
    const from = hex(origin)
    seen.byOrigin[from] = (seen.byOrigin[from] ?? 0) + 1
    if (equal(origin, me)) {
      // Co-signatures may come in pieces, merged by whoever holds them all, as our nodes merge
      // them: a node that got its quorum from two pieces before a signer's merge ignores the
      // merge as nothing new, and so never passes a single copy at quorum on to its peers.
      const held = seen.ownSigners.get(id) ?? new Set()
      const before = held.size
      signers.forEach((signer) => held.add(signer))
      seen.ownSigners.set(id, held)
      if (before < quorum && held.size >= quorum) say({ event: 'own_price_cosigned', id: idText(id), signers: held.size })
    }
    say({ event: 'verified', id: idText(id), origin: from, signers: signers.length, age_ms: ageMs })
    return true
  } catch (error) {
    seen.failures.push(error.message)
    say({ event: 'verification_failed', why: error.message, bytes: hex(bytes) })
    return false
  }
}

// --- The libp2p node --------------------------------------------------------------------------

const node = await createLibp2p({
  // The signer key is also the libp2p identity, as for our nodes.
  privateKey: privateKeyFromRaw(secret),
  transports: [tcp()],
  connectionEncrypters: [noise()],
  streamMuxers: [yamux()],
  services: {
    identify: identify(),
    pubsub: gossipsub({
      // Messages carry their own signatures: no envelope, no author, no sequence number.
      globalSignaturePolicy: 'StrictNoSign',
      // The id every peer must agree on, or IHAVE/IWANT promises break.
      msgIdFn: (message) => keccak_256(message.data),
      // This peer stays out of every mesh, so what our nodes forward reaches it only through
      // IHAVE/IWANT, the exchange that depends on the message id. Its own prices still leave by
      // flood publishing, and our nodes' own broadcasts are flood-published to it too.
      D: 0,
      Dlo: 0,
      Dhi: 0,
      Dout: 0,
      Dscore: 0,
      fallbackToFloodsub: false
    })
  }
})
const pubsub = node.services.pubsub

// Gossipsub does not say which messages answered an IWANT, so its IHAVE handler is wrapped to
// note the ids it asks for.
const handleIHave = pubsub.handleIHave.bind(pubsub)
pubsub.handleIHave = (peer, ihave) => {
  const iwant = handleIHave(peer, ihave)
  for (const { messageIDs } of iwant) {
    for (const id of messageIDs ?? []) seen.askedFor.add(pubsub.msgIdToStrFn(id))
  }
  return iwant
}

pubsub.topicValidators.set(args.topic, (_peer, message) =>
  onMessage(message.data) ? TopicValidatorResult.Accept : TopicValidatorResult.Reject)
pubsub.addEventListener('gossipsub:message', ({ detail }) => {
  if (seen.askedFor.has(detail.msgId)) {
    seen.gossiped++
    seen.lastGossipedAt = Date.now()
  }
})
pubsub.subscribe(args.topic)

const bootstrap = multiaddr(args.bootstrap)
const bootstrapPeer = bootstrap.getComponents().find((c) => c.name === 'p2p')?.value
pubsub.addEventListener('gossipsub:heartbeat', () => {
  if (bootstrapPeer === undefined) return
  const score = pubsub.getScore(bootstrapPeer)
  seen.lowestBootstrapScore = Math.min(seen.lowestBootstrapScore ?? score, score)
})
say({
  event: 'started',
  peer_id: node.peerId.toString(),
  address: hex(me),
  allowlisted: allowed(me),
  network_id_matches: equal(networkIdOf({
    network: args.network, feed: args.feed, decimals, quorum, signers: allowlist
  }), networkId),
  topic_matches: expectedTopic === args.topic
})

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))
const deadline = startedAt + Number(args['run-for-ms'])

async function connect () {
  for (;;) {
    try {
      await node.dial(bootstrap)
      say({ event: 'connected', to: args.bootstrap })
      return
    } catch (error) {
      if (Date.now() + 500 > deadline) throw error
      await sleep(500)
    }
  }
}

let sequence = Math.floor(Math.random() * 0x1000)
async function publishOwnPrice () {
  const observedAtMs = Date.now()
  sequence = (sequence + 1) & 0xfff
  const body = { id: mintId(observedAtMs, sequence, me), feed, price, decimals, observedAtMs: BigInt(observedAtMs) }
  const signature = sign(keccak_256(signedBytes(networkId, body)), secret)
  const bytes = encode(networkId, body, [{ signer: me, signature }])
  // A message of its own must pass its own checks before it goes out.
  verify(bytes)
  const { recipients } = await pubsub.publish(args.topic, bytes)
  seen.published.push(body.id)
  seen.ownSigners.set(body.id, new Set([hex(me)]))
  say({ event: 'published', id: idText(body.id), price: price.toString(), recipients: recipients.length })
}

function summary () {
  const cosigned = [...seen.ownSigners].filter(([, held]) => held.size >= quorum).map(([id]) => idText(id))
  return {
    event: 'summary',
    address: hex(me),
    received: seen.received,
    verified: seen.verified,
    failures: seen.failures,
    by_origin: seen.byOrigin,
    asked_for: seen.askedFor.size,
    gossiped: seen.gossiped,
    // Our nodes gossip only to peers they score above their gossip threshold.
    last_gossiped_after_ms: seen.lastGossipedAt && seen.lastGossipedAt - startedAt,
    published: seen.published.map(idText),
    own_signers: Object.fromEntries([...seen.ownSigners].map(([id, held]) => [idText(id), held.size])),
    cosigned,
    // This peer's score of the node it joined through: negative means our node broke its
    // IHAVE/IWANT promises or sent invalid messages.
    bootstrap_score: bootstrapPeer ? pubsub.getScore(bootstrapPeer) : null,
    bootstrap_score_min: seen.lowestBootstrapScore,
    ran_for_ms: Date.now() - startedAt
  }
}

async function main () {
  await connect()
  // Publishing needs a peer on the topic.
  while (!pubsub.getSubscribers(args.topic).length) {
    if (Date.now() > deadline) throw new Error('no peer subscribed to the topic')
    await sleep(100)
  }
  say({ event: 'subscribed', peers: pubsub.getSubscribers(args.topic).map(String) })
  const every = Number(args['publish-every-ms'])
  for (let n = 0; n < Number(args.publishes); n++) {
    await publishOwnPrice()
    await sleep(Math.min(every, Math.max(0, deadline - Date.now())))
  }
  await sleep(Math.max(0, deadline - Date.now()))
}

let status = 0
try {
  await main()
} catch (error) {
  say({ event: 'error', why: String(error?.stack ?? error) })
  status = 1
}
say(summary())
await Promise.race([node.stop(), sleep(2000)])
process.exit(status)
