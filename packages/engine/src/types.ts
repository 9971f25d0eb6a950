/**
 * Messages, states and status vocabulary of the engine's actors. All plain data (msgpack-able):
 * states are stored by the runtime, messages travel over JetStream.
 */
import type { ActorAddress } from '@kiln/runtime';

/** A stack's desired spec: what the user asked for. */
export interface StackSpec {
  readonly template: unknown;
  readonly environment?: unknown;
  readonly parameters?: Record<string, unknown>;
  readonly files?: Record<string, string>;
  /** Heat's timeout_mins; 0/undefined = the engine default. */
  readonly timeoutMins?: number;
  /** A nested stack: its parent resource's sections, read by `resource_facade`. */
  readonly facade?: ResourceFacade;
}

/** What `resource_facade` returns in a nested stack: the parent resource's sections (resolved). */
export interface ResourceFacade {
  readonly metadata: unknown;
  readonly deletion_policy: string;
  readonly update_policy: unknown;
}

/** A ResourceGroup's member set, interpreted by the shard tree without materialising members. */
export interface GroupShape {
  readonly count: number;
  /** Member indices removed by removal_policies (skipped when numbering members). */
  readonly removed: readonly number[];
}

export interface GroupSpec {
  readonly shape: GroupShape;
  /** Member definition: type and concrete (already resolved) properties; %index% replaced per member. */
  readonly member: {
    readonly type: string;
    readonly properties: Record<string, unknown>;
    readonly metadata?: unknown;
    /** The member type maps to a template (members are nested stacks). */
    readonly nestedTemplate?: ResourceDef['nestedTemplate'];
  };
  readonly indexVar: string;
  /** Whether members report refs/attributes up the tree (group attributes are wanted). */
  readonly collect: boolean;
  /** removal_policies_mode: `append` keeps earlier removals, `update` replaces them. */
  readonly mode: 'append' | 'update';
  /**
   * AutoScalingGroup: which members go on scale-in, decided by the group's supervisor against the
   * shape it actually has (so quick successive sizes do not compound): `newest` (highest indices),
   * `oldest`, with `named` member indices first.
   */
  readonly scaleIn?: { readonly policy: ScaleInPolicy; readonly named: readonly number[] };
  /**
   * update_policy: a change of the member definition reaches existing members in batches
   * (ResourceGroup `rolling_update`, AutoScalingGroup `rolling_updates`); the first create makes
   * members in batches (ResourceGroup `batch_create`).
   */
  readonly rolling?: RollingPolicy;
  readonly batchCreate?: RollingPolicy;
  /**
   * Set by the group's supervisor for a generation it rolls out in batches: members that need an
   * action wait for their batch (`go`); `prev` is the shape before (members outside it are new
   * and do not wait), null for a batched create (every member waits).
   */
  readonly rollout?: { readonly prev: GroupShape | null };
}

/** Heat's rolling update / batch create settings (pause in ms). */
export interface RollingPolicy {
  readonly maxBatchSize: number;
  readonly minInService: number;
  readonly pauseMs: number;
}

/**
 * Which members go on scale-in (after any named ones): `newest` (highest indices), `oldest`
 * (lowest), `unhealthy_first` (members that failed or are repairing, then the oldest, as Heat's
 * AutoScalingGroup removes FAILED members first).
 */
export type ScaleInPolicy = 'newest' | 'oldest' | 'unhealthy_first';

/** Scope a resource needs to resolve its property expressions (besides its dependencies' data). */
export interface ResolveScope {
  readonly version: string;
  readonly params: Record<string, unknown>;
  readonly conditions: Record<string, boolean>;
  readonly files: Record<string, string>;
  readonly stackId: string;
  readonly stackName: string;
  /** A nested stack: its parent resource's sections (`resource_facade`). */
  readonly facade?: ResourceFacade;
}

/**
 * The attribute names of a resource that get_attr reads somewhere (sorted); `true`: any of them
 * (a get_attr of the whole resource, or of a computed name).
 */
export type AttributesRead = true | readonly string[];

/**
 * The resolve scope a desire carries: the stack's id and name are the resource's own (its actor
 * state has them), so they do not travel (records written before have them).
 */
export type DesireScope = Omit<ResolveScope, 'stackId' | 'stackName'> & Partial<Pick<ResolveScope, 'stackId' | 'stackName'>>;

/** A resource's definition for one generation, as sent to its actor. */
export interface ResourceDef {
  readonly type: string;
  /** Property expressions (resource references still unresolved) or concrete values. */
  readonly properties: unknown;
  readonly scope: DesireScope | null;
  readonly deletionPolicy: 'Delete' | 'Retain' | 'Snapshot';
  readonly updatePolicy: unknown;
  readonly metadata: unknown;
  /**
   * The attributes something reads (a group then collects member data); absent: none. A task
   * resource's `ready` carries only these.
   */
  readonly attributesRead?: AttributesRead;
  /** ResourceGroup: the member type after the resource_registry. */
  readonly groupMember?: { readonly type: string; readonly nestedTemplate?: ResourceDef['nestedTemplate'] };
  /** Nested template content for template resources (type mapped to a file). */
  readonly nestedTemplate?: { readonly template: unknown; readonly files: Record<string, string>; readonly environment?: unknown };
  /** Adopted: the first create takes over this physical resource instead of making one. */
  readonly adopt?: AdoptedResource;
  /** A nested stack resource: group capacity overrides for its child stack, by path below it. */
  readonly childOverrides?: Readonly<Record<string, number>>;
}

/**
 * Where a nested stack's resource events go: the top-level stack's subject, with the resource
 * named by its path from there (`workers/3`, `app/db`), so a client following a stack sees its
 * nested members too.
 */
export interface EventsRoot {
  readonly stackId: string;
  readonly stackName: string;
  /** Path prefix of this stack's resources, ending in `/`. */
  readonly path: string;
}

/** A resource taken over by `stack.adopt`: its physical id and last known attributes. */
export interface AdoptedResource {
  readonly physicalId: string | null;
  readonly attrs: Record<string, unknown>;
}

/** Data a ready resource sends its dependants. */
export interface DepData {
  readonly gen: number;
  readonly ref: unknown;
  readonly attrs: Record<string, unknown>;
  readonly type: string;
}

export type ResourceMsg =
  | {
      readonly kind: 'desire';
      readonly gen: number;
      readonly parent: ActorAddress;
      readonly slot: number;
      readonly tenant: string;
      readonly stackId: string;
      readonly stackName: string;
      readonly def: ResourceDef | null;
      readonly requires: readonly string[];
      readonly dependants: readonly string[];
      /** Report ref/attributes with the settled report (the parent collects group attributes). */
      readonly collect?: boolean;
      /** Stack abandoned: leave the physical resources, only forget them. */
      readonly forget?: boolean;
      /** Set in nested stacks: where this resource's events go. */
      readonly eventsRoot?: EventsRoot;
      /** A group rolls this generation out in batches: act (create/change) only after `go`. */
      readonly rolling?: boolean;
    }
  /** The member's batch of a rollout has started (from its shard). */
  | { readonly kind: 'go'; readonly gen: number }
  | { readonly kind: 'ready'; readonly from: string; readonly data: DepData }
  | { readonly kind: 'moved'; readonly from: string; readonly gen: number; readonly gone: boolean }
  /**
   * Lost-mail repair: a resource desired again at `gen` (or the supervisor, `from` = `$outputs`)
   * still lacks the receiver's `ready` (the receiver is its dependency) or `moved` (its dependant)
   * at `gen`. Answered to `from` alone once the receiver is there; ignored before (it sends them
   * anyway when it gets there).
   */
  | { readonly kind: 'askReady'; readonly from: string; readonly gen: number }
  | { readonly kind: 'askMoved'; readonly from: string; readonly gen: number }
  | { readonly kind: 'signal'; readonly data: unknown }
  /** resource.mark-unhealthy: replace the current incarnation (a repair: through a permit). */
  | { readonly kind: 'unhealthy'; readonly reason: string }
  /**
   * resource/stack check: observe the physical resource now. `inc`: the cloud reported a change
   * of that incarnation's object (ignored when it is not the current one).
   */
  | { readonly kind: 'check'; readonly inc?: number }
  /** The supervisor's answer to `repairPermit`: the pending repair may start. */
  | { readonly kind: 'permit' }
  | {
      /** From a child stack supervisor (nested stacks, groups). */
      readonly kind: 'child';
      readonly token: string;
      /** CONVERGING: a READY child started a repair (its parent resource shows it as repairing). */
      readonly state: 'READY' | 'FAILED' | 'GONE' | 'CONVERGING';
      readonly outputs: Record<string, unknown>;
      readonly reason?: string;
      /** FAILED by broken physical resources only (no template or property error): a new copy may work. */
      readonly replaceable?: boolean;
    };

/** A member's (resource's) report to its parent (shard or supervisor). */
export interface MemberReport {
  readonly kind: 'report';
  readonly gen: number;
  readonly slot: number;
  /** `repairing`: was settled at this generation, now repairing drift (not done until settled again). */
  readonly state: 'settled' | 'failed' | 'gone' | 'repairing';
  readonly reason?: string;
  /**
   * Failed: by a broken physical resource (replacements given up, or a child stack failed that
   * way), not by a template, property or provider error — a new copy may work.
   */
  readonly replaceable?: boolean;
  readonly name: string;
  /** Present when the parent collects (group attributes). */
  readonly ref?: unknown;
  readonly attrs?: Record<string, unknown>;
}

export interface ShardReport {
  readonly kind: 'shardReport';
  readonly shard: string;
  /** The shard's position among its parent's children. */
  readonly slot: number;
  readonly gen: number;
  readonly settled: number;
  readonly failed: number;
  readonly gone: number;
  readonly total: number;
  readonly reason?: string;
  /** Every failure below is replaceable (see MemberReport). */
  readonly replaceable?: boolean;
  /** A shard that was done has a member repairing drift again (heal): the stack converges again. */
  readonly repairing?: boolean;
  /** Collected member data in slot order (group attributes), when asked for. */
  readonly members?: ReadonlyArray<{ readonly name: string; readonly ref: unknown; readonly attrs: Record<string, unknown> }>;
  /** Group shards: member indices that failed or are repairing (bounded; scale-in "unhealthy first"). */
  readonly unhealthy?: readonly number[];
}

/** Rollout: members with indices in [lo, hi) may act now (supervisor -> shards -> members). */
export interface OpenBatch {
  readonly kind: 'openBatch';
  readonly gen: number;
  readonly lo: number;
  readonly hi: number;
}

/** Rollout: every member of the batch range covered by the shard is done (settled, gone or failed). */
export interface BatchDone {
  readonly kind: 'batchDone';
  readonly gen: number;
  readonly failed: number;
  /**
   * The sender's position among its parent's children and the batch's `lo` as it was opened:
   * a repeat (the first was lost, or the batch was opened again) counts once, and only for its
   * batch. Absent in messages sent before they existed.
   */
  readonly slot?: number;
  readonly lo?: number;
}

export type ShardMsg =
  | OpenBatch
  | BatchDone
  | {
      readonly kind: 'shardDesire';
      readonly gen: number;
      readonly parent: ActorAddress;
      readonly tenant: string;
      readonly stackId: string;
      readonly stackName: string;
      /** This shard's position among its parent's children. */
      readonly slot: number;
      /** Resolve scope shared by the named members (sent once per shard, not once per member). */
      readonly scope?: ResolveScope;
      /** Named members (wide template stacks): name -> desire parts; null def = delete. */
      readonly named?: ReadonlyArray<{
        readonly name: string;
        readonly def: ResourceDef | null;
        readonly requires: readonly string[];
        readonly dependants: readonly string[];
      }>;
      /** Group members: index range [lo, hi) of the group; level 0 = a leaf holding members. */
      readonly group?: { readonly level: number; readonly lo: number; readonly hi: number; readonly spec: GroupSpec };
      /** Stack abandoned: members forget their resources instead of deleting them. */
      readonly forget?: boolean;
      readonly eventsRoot?: EventsRoot;
      /**
       * A repeat of a desire sent before (the sender has not heard this shard reach the
       * generation): the shard desires again the children it has not heard from, if it has heard
       * nothing from any of them for `quietMs` (children that report are being worked on).
       */
      readonly again?: { readonly quietMs: number };
    }
  | MemberReport
  | ShardReport;

/**
 * `cancel` re-targets to the previous generation's spec; `adopt` creates a stack over existing
 * resources; `abandon` removes the stack like `delete` but forgets its resources instead of
 * deleting them.
 */
export type StackOp = 'create' | 'update' | 'patch' | 'delete' | 'cancel' | 'adopt' | 'abandon';

/** Whether an op removes the stack (its resources leave, deleted or forgotten). */
export function removesStack(op: StackOp | null): boolean {
  return op === 'delete' || op === 'abandon';
}

export type StackMsg =
  | {
      readonly kind: 'setDesired';
      readonly op: StackOp;
      /** Given by the API (CAS counter); absent when a parent resource drives a child stack. */
      readonly gen?: number;
      readonly name: string;
      /** Owner of the stack; nested stacks get their parent's. Absent: the default tenant. */
      readonly tenant?: string;
      /** The full desired spec (a patch is merged by the engine before it is sent). */
      readonly spec?: StackSpec | undefined;
      /** Group capacity overrides: resource name -> `count` (group.capacity.set). */
      readonly overrides?: Readonly<Record<string, number>>;
      /** Resources adopted (stack.adopt): taken over with these physical ids, not created. */
      readonly adopt?: Readonly<Record<string, AdoptedResource>>;
      readonly group?: GroupSpec;
      /** Parent resource (nested stacks): where to report, and the token to echo. */
      readonly parent?: { readonly addr: ActorAddress; readonly token: string };
      /** Nested stacks: where their resources' events go. */
      readonly eventsRoot?: EventsRoot;
    }
  | ShardReport
  | MemberReport
  | BatchDone
  /** A resource asks for a repair permit (per-stack rate limit); answered with `permit`. */
  | { readonly kind: 'repairPermit'; readonly from: string };

/** Derived stack status (plus Heat's action/status pair). */
export type StackStatus = 'CONVERGING' | 'READY' | 'FAILED' | 'DELETED';
export type HeatAction = 'INIT' | 'CREATE' | 'UPDATE' | 'DELETE' | 'ADOPT' | 'ROLLBACK' | 'CHECK' | 'ABANDON';
export type HeatStatus = 'IN_PROGRESS' | 'COMPLETE' | 'FAILED';

export interface EngineEvent {
  readonly tenant: string;
  /** The top-level stack (resources of nested stacks are named by their path from it). */
  readonly stackId: string;
  /** The nested stack a resource event comes from, when not the top-level one. */
  readonly nestedStackId?: string;
  readonly stackName: string;
  /** Resource name or path (`workers/3`); absent for stack-level events. */
  readonly resource?: string;
  readonly physicalId?: string | null;
  readonly type?: string;
  readonly gen: number;
  readonly action: HeatAction;
  readonly status: HeatStatus;
  readonly reason: string;
  readonly ts: number;
}
