// The bridge from a verified token to what the policy engine matches against.
#include "policy/policy.h"
#include "policy/token.h"

namespace pgmoat::policy {

Approval to_approval(const TokenClaims& claims) {
  Approval a;
  a.id = claims.id;
  a.approver = claims.approver;
  a.reason = claims.reason;
  a.expires_at = claims.expires_at;
  a.databases = claims.databases;
  a.users = claims.users;
  a.application_name = claims.application_name;
  a.client_cidr = claims.client_cidr;
  a.classes = claims.classes;
  a.tables = claims.tables;
  // The token's limit; the caller subtracts ApprovalStore::uses(id) for what is left.
  a.uses_left = claims.max_uses;
  return a;
}

}  // namespace pgmoat::policy
