'use strict';
// Authentication as pveproxy does it (notes §2): tickets, CSRF tokens, API tokens,
// and the privilege-separated token permission check.

const crypto = require('crypto');

const TICKET_LIFETIME_S = 2 * 3600;

class Auth {
  /** @param {{users, tokens, nowSec: () => number}} o */
  constructor(o) {
    this.users = o.users;
    this.tokens = o.tokens;
    this.nowSec = o.nowSec;
    this.secret = crypto.randomBytes(32);
    this.revoked = new Set(); // tickets made stale by faults.expireTickets()
    this.issued = new Set();
  }

  sign(data) {
    return crypto.createHmac('sha256', this.secret).update(data).digest('base64');
  }

  hex8(sec) {
    return sec.toString(16).toUpperCase().padStart(8, '0');
  }

  /** PVE:<userid>:<8 hex time>::<base64 signature> */
  makeTicket(userid) {
    const plain = `PVE:${userid.replace(/:/g, '%3A')}:${this.hex8(this.nowSec())}`;
    const t = `${plain}::${this.sign(plain)}`;
    this.issued.add(t);
    // a ticket issued anew in the same second has the same text (as in PVE): it is valid again
    this.revoked.delete(t);
    return t;
  }

  /** <8 hex time>:<base64 HMAC> */
  makeCsrf(userid) {
    const ts = this.hex8(this.nowSec());
    return `${ts}:${this.sign(`${ts}:${userid}`).replace(/=+$/, '')}`;
  }

  ageOk(hexTime) {
    const t = parseInt(hexTime, 16);
    const age = this.nowSec() - t;
    return age > -300 && age < TICKET_LIFETIME_S;
  }

  /** Returns the userid when valid, else null. */
  verifyTicket(ticket) {
    const m = /^(PVE:([^:]+):([0-9A-F]{8}))::(.+)$/.exec(ticket || '');
    if (!m || this.revoked.has(ticket)) return null;
    const expected = this.sign(m[1]);
    if (expected.length !== m[4].length || !crypto.timingSafeEqual(Buffer.from(expected), Buffer.from(m[4]))) return null;
    if (!this.ageOk(m[3])) return null;
    return decodeURIComponent(m[2]);
  }

  verifyCsrf(token, userid) {
    const m = /^([0-9A-F]{8}):(.+)$/.exec(token || '');
    if (!m) return false;
    if (this.sign(`${m[1]}:${userid}`).replace(/=+$/, '') !== m[2]) return false;
    return this.ageOk(m[1]);
  }

  expireAll() {
    for (const t of this.issued) this.revoked.add(t);
  }

  /** username/password login; password may be a valid ticket (renewal). */
  login(username, password, realm) {
    let userid = String(username || '');
    if (realm && !userid.includes('@')) userid = `${userid}@${realm}`;
    const user = this.users.find((u) => u.userid === userid);
    if (!user) return null;
    if (password === user.password) return user.userid;
    if (String(password || '').startsWith('PVE:') && this.verifyTicket(password) === user.userid) return user.userid;
    return null;
  }

  /**
   * Work out who is calling from the headers.
   * Returns {kind:'token'|'ticket'|'none', userid?, tokenid?, token?, error?:reason}
   */
  identify(headers) {
    const authz = String(headers.authorization || '');
    const tm = /(?:^|\s)PVEAPIToken(?:=| )([^;]*)/.exec(authz);
    if (tm) {
      const m = /^(.*)=(.*)$/.exec(tm[1].trim());
      if (!m) return { kind: 'token', error: 'Authentication failed!' };
      const id = m[1];
      const tok = this.tokens.find((t) => t.id === id);
      if (!/^[^!\s]+@[^!\s]+![A-Za-z][A-Za-z0-9.\-_]+$/.test(id) || !tok || tok.secret !== m[2]) {
        return { kind: 'token', error: 'Authentication failed!' };
      }
      return { kind: 'token', userid: id.split('!')[0], tokenid: id, token: tok };
    }
    let ticket = null;
    const cookie = String(headers.cookie || '');
    const cm = /(?:^|;\s*)PVEAuthCookie=([^;]*)/.exec(cookie);
    if (cm) ticket = cm[1];
    else {
      const am = /(?:^|\s)PVEAuthCookie=([^;\s]*)/.exec(authz);
      if (am) ticket = am[1];
    }
    if (ticket === null) return { kind: 'none', error: 'No ticket' };
    try {
      ticket = decodeURIComponent(ticket);
    } catch {
      /* keep raw */
    }
    const userid = this.verifyTicket(ticket);
    if (!userid) return { kind: 'ticket', error: 'Authentication failed!' };
    return { kind: 'ticket', userid };
  }
}

/**
 * Privilege check for privilege-separated tokens (users and non-privsep tokens may do everything).
 * privs: { '/vms/100': ['VM.Audit'], '/': [...] } — a prefix grants to everything below it.
 */
function hasPriv(who, aclPath, priv) {
  if (!who || !who.token || !who.token.privsep) return true;
  const privs = who.token.privs || {};
  for (const [prefix, list] of Object.entries(privs)) {
    const p = prefix === '/' ? '/' : prefix.replace(/\/+$/, '');
    if (p === '/' || aclPath === p || aclPath.startsWith(`${p}/`)) {
      if ((list || []).includes(priv)) return true;
    }
  }
  return false;
}

module.exports = { Auth, hasPriv, TICKET_LIFETIME_S };
