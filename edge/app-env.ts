import type { EdgeBindings, EdgeConfig } from "./env.ts";

/** Who a request acts as once authenticated. */
export type Principal =
  | {
      readonly kind: "user";
      readonly userId: string;
      readonly scopes: readonly string[];
      readonly tokenId: string;
      /** The refresh-token family the access token belongs to (logout revokes it). */
      readonly familyId: string;
    }
  | { readonly kind: "device"; readonly deviceId: string; readonly userId: string; readonly tokenId: string };

/** An authenticated admin credential. */
export interface AdminPrincipal {
  readonly tokenId: string;
  readonly scopes: readonly string[];
}

/** Hono's typing for the edge app: bindings and per-request variables. */
export interface AppEnv {
  Bindings: EdgeBindings;
  Variables: {
    config: EdgeConfig;
    requestId: string;
    /** Canonical client address, or null when none could be determined. */
    clientAddress: string | null;
    principal: Principal;
    admin: AdminPrincipal;
    /** The API error code of a refused request, for the audit log. */
    errorCode: string;
    /** JSON detail for the audit row of an admin request. */
    auditDetail: string;
  };
}
