'use strict';
// Request checker built at run time from the official PVE API schema
// (pve-docs api-viewer/apidata.js converted to JSON, AGPL: it is only READ here,
// never copied into this repository).
//
// loadSchema(file) -> { ok, note, file, match(path) }
// checkParams(info, params, pathParams, {json}) -> { errors: {param: msg}, problems: [...] }

const fs = require('fs');
const path = require('path');

// ../shared beside the repository (test/pve-sim is two levels below its root); no fixed absolute path
const DEFAULT_FILE = path.resolve(__dirname, '..', '..', '..', 'shared', 'pve-apidata.json');
const cache = new Map(); // file -> loaded schema (the file is ~2 MB: load once per process)

function candidateFiles(explicit) {
  if (explicit) return [explicit];
  if (process.env.PVE_APIDATA) return [process.env.PVE_APIDATA];
  return [DEFAULT_FILE];
}

/** Load (cached) and index the schema. Never throws: a missing file gives {ok:false, note}. */
function loadSchema(explicit) {
  const files = candidateFiles(explicit);
  const file = files.find((f) => fs.existsSync(f));
  if (!file) {
    return { ok: false, file: files[0], note: `API schema check NOT run: ${files[0]} not found`, match: () => null };
  }
  if (cache.has(file)) return cache.get(file);
  let tree;
  try {
    tree = JSON.parse(fs.readFileSync(file, 'utf8'));
    if (!Array.isArray(tree)) throw new Error('not a JSON array');
  } catch (e) {
    const res = { ok: false, file, note: `API schema check NOT run: ${file} unreadable (${e.message})`, match: () => null };
    cache.set(file, res);
    return res;
  }
  // Index: a trie of path segments; a segment '{x}' is a wildcard naming path param x.
  const root = { lit: new Map(), vars: [], node: null };
  let count = 0;
  const walk = (items) => {
    for (const it of items) {
      if (it.path && it.info) {
        let cur = root;
        for (const seg of it.path.split('/').filter(Boolean)) {
          const m = /^\{(\w[\w-]*)\}$/.exec(seg);
          if (m) {
            let v = cur.vars.find((x) => x.name === m[1]);
            if (!v) {
              v = { name: m[1], next: { lit: new Map(), vars: [], node: null } };
              cur.vars.push(v);
            }
            cur = v.next;
          } else {
            if (!cur.lit.has(seg)) cur.lit.set(seg, { lit: new Map(), vars: [], node: null });
            cur = cur.lit.get(seg);
          }
        }
        cur.node = it;
        count += Object.keys(it.info).length;
      }
      if (Array.isArray(it.children)) walk(it.children);
    }
  };
  walk(tree);

  /** match('/nodes/pve1/lxc/100/status/current') -> {template, info, pathParams} | null */
  function match(p) {
    const segs = p.split('/').filter(Boolean);
    const rec = (cur, i, params) => {
      if (i === segs.length) return cur.node ? { template: cur.node.path, info: cur.node.info, pathParams: params } : null;
      const l = cur.lit.get(segs[i]);
      if (l) {
        const r = rec(l, i + 1, params);
        if (r) return r;
      }
      for (const v of cur.vars) {
        const r = rec(v.next, i + 1, { ...params, [v.name]: segs[i] });
        if (r) return r;
        // pveproxy unescapes the whole path before matching: a volume id such as
        // 'pbs:backup/ct/100/...' spans several segments (encoded or not).
        if (v.name === 'volume' && v.next.node && i < segs.length - 1) {
          return { template: v.next.node.path, info: v.next.node.info, pathParams: { ...params, volume: segs.slice(i).join('/') } };
        }
      }
      return null;
    };
    return rec(root, 0, {});
  }
  const res = { ok: true, file, note: `API schema check active (${file}, ${count} methods)`, match };
  cache.set(file, res);
  return res;
}

// A few 'format' checks, where simple. Messages follow PVE's JSONSchema wording.
const FORMATS = {
  'pve-vmid': (v) => (/^[1-9][0-9]{2,8}$/.test(v) ? null : 'value does not look like a valid VM ID'),
  'pve-node': (v) => (/^[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?$/.test(v) ? null : `value does not look like a valid node name`),
  'pve-configid': (v) => (/^[a-z][a-z0-9_-]+$/i.test(v) ? null : `invalid configuration ID '${v}'`),
  'pve-storage-id': (v) => (/^[a-z][a-z0-9\-_.]*[a-z0-9]$/i.test(v) ? null : `storage ID '${v}' contains illegal characters`),
  'pve-vmid-list': (v) => {
    for (const x of String(v)
      .split(/[,;\s]+/)
      .filter(Boolean)) {
      if (!/^[1-9][0-9]{2,8}$/.test(x)) return `value '${x}' does not look like a valid VM ID`;
    }
    return null;
  },
};

/** Find the schema entry for a parameter name, including indexed names like net[n]. */
function propFor(props, name) {
  if (Object.prototype.hasOwnProperty.call(props, name)) return props[name];
  const m = /^([a-z][a-z_-]*?)(\d+)$/i.exec(name);
  if (m && Object.prototype.hasOwnProperty.call(props, `${m[1]}[n]`)) return props[`${m[1]}[n]`];
  return null;
}

/** Check one value against its declared type; returns an error string or null. */
function checkValue(schema, value, json) {
  const t = schema.type;
  if (Array.isArray(value) && t !== 'array') value = value[value.length - 1];
  if (t === 'boolean') {
    if (json && typeof value === 'boolean') return null;
    if (value === 0 || value === 1) return null;
    if (value === '0' || value === '1') return null;
    return `type check ('boolean') failed - got '${value}'`;
  }
  if (t === 'integer') {
    if (json && typeof value === 'number' && Number.isInteger(value)) {
      /* ok */
    } else if (!/^-?\d+$/.test(String(value))) return `type check ('integer') failed - got '${value}'`;
    const n = Number(value);
    if (schema.minimum !== undefined && n < schema.minimum) return `value must have a minimum value of ${schema.minimum}`;
    if (schema.maximum !== undefined && n > schema.maximum) return `value must have a maximum value of ${schema.maximum}`;
  } else if (t === 'number') {
    if (!(json && typeof value === 'number') && !/^-?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(String(value))) {
      return `type check ('number') failed - got '${value}'`;
    }
    const n = Number(value);
    if (schema.minimum !== undefined && n < schema.minimum) return `value must have a minimum value of ${schema.minimum}`;
    if (schema.maximum !== undefined && n > schema.maximum) return `value must have a maximum value of ${schema.maximum}`;
  } else if (t === 'string') {
    if (typeof value === 'object' && value !== null) return `type check ('string') failed - got '${JSON.stringify(value)}'`;
    const s = String(value);
    if (Array.isArray(schema.enum) && !schema.enum.includes(s)) {
      return `value '${s}' does not have a value in the enumeration '${schema.enum.join(', ')}'`;
    }
    if (schema.maxLength !== undefined && s.length > schema.maxLength) return `value may only be ${schema.maxLength} characters long`;
    if (schema.minLength !== undefined && s.length < schema.minLength) return `value must be at least ${schema.minLength} characters long`;
    if (schema.pattern) {
      try {
        if (!new RegExp(`^(?:${schema.pattern})$`).test(s)) return 'value does not match the regex pattern';
      } catch {
        /* perl-only regex */
      }
    }
  }
  if (typeof schema.format === 'string' && FORMATS[schema.format]) {
    const err = FORMATS[schema.format](String(value));
    if (err) return `invalid format - ${err}\n`;
  }
  return null;
}

/**
 * Check request parameters against one method's declared parameters.
 * params: all query+body params (path params NOT included); pathParams: from the URL.
 * Returns {errors} where errors maps param -> PVE message (empty object when fine).
 */
function checkParams(methodInfo, params, pathParams, { json = false } = {}) {
  const decl = (methodInfo && methodInfo.parameters) || {};
  const props = decl.properties || {};
  const errors = {};
  const additional = decl.additionalProperties !== undefined && Number(decl.additionalProperties) === 1;
  for (const [k, v] of Object.entries(params)) {
    const p = propFor(props, k);
    if (!p) {
      if (!additional) errors[k] = 'property is not defined in schema and the schema does not allow additional properties';
      continue;
    }
    const err = checkValue(p, v, json);
    if (err) errors[k] = err;
  }
  for (const [k, v] of Object.entries(pathParams)) {
    const p = propFor(props, k);
    if (!p) continue;
    const err = checkValue(p, v, false);
    if (err) errors[k] = err;
  }
  for (const [k, p] of Object.entries(props)) {
    if (k.includes('[n]')) continue;
    const present = params[k] !== undefined || pathParams[k] !== undefined;
    if (!present && !Number(p.optional || 0)) errors[k] = 'property is missing and it is not optional';
    if (present && typeof p.requires === 'string' && params[p.requires] === undefined && pathParams[p.requires] === undefined) {
      errors[p.requires] = `missing property required by '${k}'`;
    }
  }
  return { errors };
}

module.exports = { loadSchema, checkParams, checkValue, DEFAULT_FILE };
