-- Wireshark dissector for the CIoT end-to-end security protocol of
-- 3GPP TR 33.863 as the ciot-e2e crate puts it on the wire (docs/wire-format.md).
--
-- Wire format version 3. Same fields, abbreviations, offsets and findings as
-- the crate's lax dissector (`ciot_e2e_analyze::dissect`, `ciot-e2e dissect
-- --json`); ci/tshark.sh checks that they agree packet by packet. Findings
-- are added in the order the crate's decoder checks what they are about, so
-- the first is the error `ciot-e2e decode` reports. Registered on UDP port
-- 33863 (preference "UDP port") and on the USER0 link type (DLT 147).
--
-- Load: tshark -X lua_script:dissector/ciot_e2e.lua -r capture.pcap
-- or copy it into Wireshark's personal Lua plugins folder (see README.md).
-- A decode-only fallback that needs no build: the native plugin
-- (dissector/plugin/) also decrypts with a key log.

-- The native plugin (dissector/plugin/, installed by dissector/install.sh)
-- registers the same protocol and decodes and decrypts through the crate's
-- analyzer: when it is loaded, this script steps aside, so the two never
-- fight over the name "ciot_e2e".
local native_found, native = pcall(Dissector.get, "ciot_e2e")
if native_found and native ~= nil then
  return
end

local VERSION = 3
local DEFAULT_PORT = 33863
local MAX_MESSAGE_LEN = 65507
local TRIGGER_LEN = 50
local KEY_EXPIRED_LEN = 33
local DATA_HEADER_LEN = 9
local TAG_LEN = 16
-- The hello: max(84, 49 + identifier length) octets, identifier 1..64; the
-- UE nonce (16 octets) at 16, the identifier length at 32.
local HELLO_MIN_LEN = 84
local HELLO_NONCE_AT = 16
local NONCE_LEN = 16
local HELLO_ID_LEN_AT = 32
local HELLO_ID_AT = 33
local MAX_ID_LEN = 64

local p = Proto("ciot_e2e", "CIoT end-to-end security (TR 33.863)")

local types = { [1] = "derive-trigger", [2] = "key-expired", [3] = "data", [4] = "hello" }
local suites = { [1] = "nea2-nia2", [2] = "aes-128-gcm" }
local tag_lens = { [1] = 4, [2] = 16 }
local kdfs = { [1] = "3gpp", [2] = "hkdf" }
local causes = {
  [1] = "te2e-expired", [2] = "expired-by-enterprise", [3] = "unknown-ksi", [4] = "root-replaced",
  [5] = "replaced",
}
local directions = { [0] = "uplink", [1] = "downlink" }

local f = {
  version = ProtoField.uint8("ciot_e2e.version", "Version", base.DEC),
  type = ProtoField.uint8("ciot_e2e.type", "Type", base.HEX, types),
  ksi = ProtoField.uint8("ciot_e2e.ksi", "KSI", base.DEC),
  flags = ProtoField.uint8("ciot_e2e.flags", "Flags", base.HEX),
  direction = ProtoField.uint8("ciot_e2e.flags.direction", "Direction", base.DEC, directions, 0x01),
  reserved = ProtoField.uint8("ciot_e2e.flags.reserved", "Reserved", base.HEX, nil, 0xfe),
  confirm = ProtoField.uint8("ciot_e2e.flags.confirm", "CONFIRM", base.DEC, nil, 0x01),
  named = ProtoField.uint8("ciot_e2e.flags.named", "NAMED", base.DEC, nil, 0x01),
  rekey = ProtoField.uint8("ciot_e2e.flags.rekey", "REKEY", base.DEC, nil, 0x01),
  trigger_counter = ProtoField.uint64("ciot_e2e.trigger.counter", "Trigger counter", base.DEC),
  trigger_rand = ProtoField.bytes("ciot_e2e.trigger.rand", "RAND"),
  trigger_kdf = ProtoField.uint8("ciot_e2e.trigger.kdf", "KDF profile", base.HEX, kdfs),
  trigger_suite = ProtoField.uint8("ciot_e2e.trigger.suite", "Suite", base.HEX, suites),
  trigger_lifetime = ProtoField.uint32("ciot_e2e.trigger.lifetime", "Lifetime (s)", base.DEC),
  trigger_tag = ProtoField.bytes("ciot_e2e.trigger.tag", "Tag"),
  ke_cause = ProtoField.uint8("ciot_e2e.key_expired.cause", "Cause", base.HEX, causes),
  ke_counter = ProtoField.uint64("ciot_e2e.key_expired.counter", "Counter", base.DEC),
  ke_seq = ProtoField.uint32("ciot_e2e.key_expired.seq", "Refused seq", base.DEC),
  ke_tag = ProtoField.bytes("ciot_e2e.key_expired.tag", "Tag"),
  hello_counter = ProtoField.uint64("ciot_e2e.hello.counter", "Highest trigger counter", base.DEC),
  hello_seq = ProtoField.uint32("ciot_e2e.hello.seq", "Hello seq", base.DEC),
  hello_nonce = ProtoField.bytes("ciot_e2e.hello.nonce", "UE nonce"),
  hello_id_len = ProtoField.uint8("ciot_e2e.hello.id_len", "Identifier length", base.DEC),
  hello_id = ProtoField.bytes("ciot_e2e.hello.id", "UE identifier"),
  hello_padding = ProtoField.bytes("ciot_e2e.hello.padding", "Padding"),
  hello_tag = ProtoField.bytes("ciot_e2e.hello.tag", "Tag"),
  data_suite = ProtoField.uint8("ciot_e2e.data.suite", "Suite", base.HEX, suites),
  data_seq = ProtoField.uint32("ciot_e2e.data.seq", "Sequence number", base.DEC),
  data_payload = ProtoField.bytes("ciot_e2e.data.payload", "Protected payload"),
  data_tag = ProtoField.bytes("ciot_e2e.data.tag", "Tag"),
  trailing = ProtoField.bytes("ciot_e2e.trailing", "Trailing octets"),
  body = ProtoField.bytes("ciot_e2e.body", "Undissected octets"),
}
p.fields = {
  f.version, f.type, f.ksi, f.flags, f.direction, f.reserved,
  f.confirm, f.named, f.rekey,
  f.trigger_counter, f.trigger_rand, f.trigger_kdf, f.trigger_suite, f.trigger_lifetime,
  f.trigger_tag, f.ke_cause, f.ke_counter, f.ke_seq, f.ke_tag,
  f.hello_counter, f.hello_seq, f.hello_nonce, f.hello_id_len, f.hello_id, f.hello_padding,
  f.hello_tag,
  f.data_suite, f.data_seq, f.data_payload, f.data_tag, f.trailing, f.body,
}

local function expert_field(kind, text)
  return ProtoExpert.new("ciot_e2e.expert." .. kind, text, expert.group.MALFORMED, expert.severity.ERROR)
end

local e = {
  truncated = expert_field("truncated", "Truncated message"),
  unknown_version = expert_field("unknown_version", "Unknown protocol version"),
  unknown_type = expert_field("unknown_type", "Unknown message type"),
  reserved_bits = expert_field("reserved_bits", "Reserved flag bits set"),
  unknown_suite = expert_field("unknown_suite", "Unknown suite"),
  unknown_kdf = expert_field("unknown_kdf", "Unknown KDF profile"),
  unknown_cause = expert_field("unknown_cause", "Unknown cause"),
  zero_lifetime = expert_field("zero_lifetime", "Zero lifetime"),
  trailing_data = expert_field("trailing_data", "Trailing data"),
  bad_length = expert_field("bad_length", "Message too long"),
  bad_id_length = expert_field("bad_id_length", "Identifier length not 1..64"),
  nonzero_padding = expert_field("nonzero_padding", "Non-zero padding"),
  unnamed_seq = expert_field("unnamed_seq", "Seq without NAMED"),
}
p.experts = {
  e.truncated, e.unknown_version, e.unknown_type, e.reserved_bits, e.unknown_suite,
  e.unknown_kdf, e.unknown_cause, e.zero_lifetime, e.trailing_data, e.bad_length,
  e.bad_id_length, e.nonzero_padding, e.unnamed_seq,
}

p.prefs.port = Pref.uint("UDP port", DEFAULT_PORT, "UDP port of the CIoT end-to-end security protocol")

-- The same sentences as the crate's wire::Error Display.
local function truncated(root, needed, got)
  root:add_proto_expert_info(e.truncated, string.format("truncated: needed %d octets, got %d", needed, got))
end

local function malformed(root, ef, field, value)
  root:add_proto_expert_info(ef, string.format("malformed %s: value 0x%x is not allowed", field, value))
end

-- A field is shown only when all its octets are there.
local function add(tree, field, tvb, offset, len)
  if offset + len <= tvb:len() then
    return tree:add(field, tvb(offset, len))
  end
  return nil
end

local function rest(root, tvb, from)
  if tvb:len() > from then
    root:add(f.body, tvb(from, tvb:len() - from))
  end
end

-- Flags of a control message, bit 0 meaning CONFIRM, NAMED or REKEY: that
-- bit and the reserved bits 1-7. Returns bit 0 (0 when there is no flags
-- octet).
local function bit_flag(root, flags_item, tvb, field)
  if flags_item == nil then return 0 end
  flags_item:add(field, tvb(3, 1))
  flags_item:add(f.reserved, tvb(3, 1))
  local flags = tvb(3, 1):uint()
  if bit.band(flags, 0xfe) ~= 0 then malformed(root, e.reserved_bits, "flags", flags) end
  return bit.band(flags, 0x01)
end

-- The first check of every control message after its type: its length.
local function at_least(root, tvb, len)
  if tvb:len() < len then truncated(root, len, tvb:len()) end
end

-- Octets past the end: the finding (once the flags are checked) ...
local function trailing_finding(root, tvb, len)
  local got = tvb:len()
  if got > len then
    root:add_proto_expert_info(e.trailing_data,
      string.format("trailing data: message is %d octets, got %d", len, got))
  end
end

-- ... and the field, after the message's own.
local function trailing_field(root, tvb, len)
  local got = tvb:len()
  if got > len then root:add(f.trailing, tvb(len, got - len)) end
end

-- The crate's order: length, flags, trailing octets, KDF, suite, lifetime.
local function trigger(root, flags_item, tvb)
  local len = tvb:len()
  at_least(root, tvb, TRIGGER_LEN)
  bit_flag(root, flags_item, tvb, f.confirm)
  trailing_finding(root, tvb, TRIGGER_LEN)
  add(root, f.trigger_counter, tvb, 4, 8)
  add(root, f.trigger_rand, tvb, 12, 16)
  if len > 28 then
    root:add(f.trigger_kdf, tvb(28, 1))
    local kdf = tvb(28, 1):uint()
    if kdfs[kdf] == nil then malformed(root, e.unknown_kdf, "kdf profile", kdf) end
  end
  if len > 29 then
    root:add(f.trigger_suite, tvb(29, 1))
    local suite = tvb(29, 1):uint()
    if suites[suite] == nil then malformed(root, e.unknown_suite, "suite", suite) end
  end
  if add(root, f.trigger_lifetime, tvb, 30, 4) and tvb(30, 4):uint() == 0 then
    malformed(root, e.zero_lifetime, "lifetime", 0)
  end
  add(root, f.trigger_tag, tvb, 34, 16)
  trailing_field(root, tvb, TRIGGER_LEN)
end

-- The crate's order: length, flags, trailing octets, a seq without NAMED,
-- cause.
local function key_expired(root, flags_item, tvb)
  at_least(root, tvb, KEY_EXPIRED_LEN)
  local named = bit_flag(root, flags_item, tvb, f.named)
  trailing_finding(root, tvb, KEY_EXPIRED_LEN)
  local cause = nil
  if tvb:len() > 4 then
    root:add(f.ke_cause, tvb(4, 1))
    cause = tvb(4, 1):uint()
  end
  add(root, f.ke_counter, tvb, 5, 8)
  if add(root, f.ke_seq, tvb, 13, 4) and named == 0 then
    -- One encoding per message: an unnamed error carries seq 0.
    local seq = tvb(13, 4):uint()
    if seq ~= 0 then malformed(root, e.unnamed_seq, "seq", seq) end
  end
  if cause ~= nil and causes[cause] == nil then malformed(root, e.unknown_cause, "cause", cause) end
  add(root, f.ke_tag, tvb, 17, 16)
  trailing_field(root, tvb, KEY_EXPIRED_LEN)
end

-- Text when every octet is ASCII graphic (0x21..0x7e), as the crate shows it.
local function printable(tvb, offset, len)
  for i = offset, offset + len - 1 do
    local b = tvb(i, 1):uint()
    if b < 0x21 or b > 0x7e then return false end
  end
  return true
end

-- The crate's order: under 84 octets truncated (whatever the identifier),
-- flags, identifier length, under the hello's length truncated, trailing
-- octets, padding.
local function hello(root, flags_item, tvb)
  local len = tvb:len()
  at_least(root, tvb, HELLO_MIN_LEN)
  bit_flag(root, flags_item, tvb, f.rekey)
  add(root, f.hello_counter, tvb, 4, 8)
  add(root, f.hello_seq, tvb, 12, 4)
  add(root, f.hello_nonce, tvb, HELLO_NONCE_AT, NONCE_LEN)
  if len <= HELLO_ID_LEN_AT then return end
  root:add(f.hello_id_len, tvb(HELLO_ID_LEN_AT, 1))
  local id_len = tvb(HELLO_ID_LEN_AT, 1):uint()
  if id_len < 1 or id_len > MAX_ID_LEN then
    -- Where the identifier ends, and so the padding and the tag, is unknown.
    malformed(root, e.bad_id_length, "identifier length", id_len)
    rest(root, tvb, HELLO_ID_AT)
    return
  end
  local expected = math.max(HELLO_MIN_LEN, HELLO_ID_AT + id_len + TAG_LEN)
  -- Under 84 octets the truncation is noted already.
  if len >= HELLO_MIN_LEN then at_least(root, tvb, expected) end
  trailing_finding(root, tvb, expected)
  local id_end = HELLO_ID_AT + id_len
  local tag_start = expected - TAG_LEN
  local id_item = add(root, f.hello_id, tvb, HELLO_ID_AT, id_len)
  if id_item ~= nil and printable(tvb, HELLO_ID_AT, id_len) then
    id_item:append_text(' ("' .. tvb(HELLO_ID_AT, id_len):string() .. '")')
  end
  if tag_start > id_end and add(root, f.hello_padding, tvb, id_end, tag_start - id_end) then
    for i = id_end, tag_start - 1 do
      local b = tvb(i, 1):uint()
      if b ~= 0 then
        malformed(root, e.nonzero_padding, "padding", b)
        break
      end
    end
  end
  add(root, f.hello_tag, tvb, tag_start, TAG_LEN)
  trailing_field(root, tvb, expected)
end

-- The crate's order: under the header truncated, over the maximum too long,
-- flags, suite, under the header and the suite's tag truncated.
local function data(root, flags_item, tvb)
  local len = tvb:len()
  at_least(root, tvb, DATA_HEADER_LEN)
  if len > MAX_MESSAGE_LEN then
    root:add_proto_expert_info(e.bad_length,
      string.format("bad length: %d octets exceeds the maximum of %d", len, MAX_MESSAGE_LEN))
  end
  if flags_item ~= nil then
    flags_item:add(f.direction, tvb(3, 1))
    flags_item:add(f.reserved, tvb(3, 1))
    local flags = tvb(3, 1):uint()
    if bit.band(flags, 0xfe) ~= 0 then malformed(root, e.reserved_bits, "flags", flags) end
  end
  local suite = nil
  if len > 4 then
    suite = tvb(4, 1):uint()
    root:add(f.data_suite, tvb(4, 1))
    if suites[suite] == nil then malformed(root, e.unknown_suite, "suite", suite) end
  end
  add(root, f.data_seq, tvb, 5, 4)
  if len < DATA_HEADER_LEN then return end
  local tag_len = tag_lens[suite]
  if tag_len == nil then
    rest(root, tvb, DATA_HEADER_LEN)
    return
  end
  if len < DATA_HEADER_LEN + tag_len then
    truncated(root, DATA_HEADER_LEN + tag_len, len)
    rest(root, tvb, DATA_HEADER_LEN)
    return
  end
  root:add(f.data_payload, tvb(DATA_HEADER_LEN, len - tag_len - DATA_HEADER_LEN))
  root:add(f.data_tag, tvb(len - tag_len, tag_len))
end

function p.dissector(tvb, pinfo, tree)
  local len = tvb:len()
  pinfo.cols.protocol = "CIOT_E2E"
  local root = tree:add(p, tvb())
  if len == 0 then
    truncated(root, 4, 0)
    pinfo.cols.info = "empty"
    return 0
  end
  root:add(f.version, tvb(0, 1))
  local version = tvb(0, 1):uint()
  if version ~= VERSION then
    root:add_proto_expert_info(e.unknown_version,
      string.format("unknown protocol version %d (this crate speaks version %d)", version, VERSION))
    rest(root, tvb, 1)
    pinfo.cols.info = "unknown version " .. version
    return len
  end
  if len < 2 then
    truncated(root, 4, len)
    pinfo.cols.info = "truncated"
    return len
  end
  local ty = tvb(1, 1):uint()
  root:add(f.type, tvb(1, 1))
  add(root, f.ksi, tvb, 2, 1)
  local flags_item = add(root, f.flags, tvb, 3, 1)
  pinfo.cols.info = types[ty] or string.format("unknown type 0x%02x", ty)
  if ty == 1 then
    trigger(root, flags_item, tvb)
  elseif ty == 2 then
    key_expired(root, flags_item, tvb)
  elseif ty == 3 then
    data(root, flags_item, tvb)
  elseif ty == 4 then
    hello(root, flags_item, tvb)
  else
    root:add_proto_expert_info(e.unknown_type, string.format("unknown message type 0x%02x", ty))
    if len < 4 then truncated(root, 4, len) end
    rest(root, tvb, 4)
  end
  return len
end

local registered_port = nil

local function register()
  local udp = DissectorTable.get("udp.port")
  if registered_port ~= nil then udp:remove(registered_port, p) end
  registered_port = p.prefs.port
  udp:add(registered_port, p)
  -- USER0 frames are whole messages. The user_dlt dissector claims USER0
  -- too, so this runs again at init, after every handoff.
  DissectorTable.get("wtap_encap"):add(wtap_encaps.USER0, p)
end

function p.prefs_changed()
  register()
end

function p.init()
  DissectorTable.get("wtap_encap"):add(wtap_encaps.USER0, p)
end

register()
