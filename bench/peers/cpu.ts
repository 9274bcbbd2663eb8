/**
 * CPU time spent during a run, split between this process (the producer, the system's client
 * side and the handler all run here), the PostgreSQL server and the Redis server: the figures
 * that say where the time of a run went, on a machine where every system competes for the same
 * cores. Server processes are found by name in /proc (Linux); elsewhere their share is NaN.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

/** The processes counted, by the command name the kernel reports. */
const SERVERS = { postgres: 'postgres', redis: 'redis-server' } as const;

type Server = keyof typeof SERVERS;

export interface CpuSnapshot {
  readonly process: NodeJS.CpuUsage;
  /** Clock ticks used so far, by server and pid; null where /proc is not readable. */
  readonly servers: Readonly<Record<Server, ReadonlyMap<number, number>>> | null;
}

/** CPU milliseconds spent between a snapshot and now. */
export interface CpuSpent {
  readonly processMs: number;
  readonly postgresMs: number;
  readonly redisMs: number;
}

let ticksPerSecond: number | null = null;

function clockTicks(): number {
  if (ticksPerSecond === null) {
    try {
      ticksPerSecond = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      ticksPerSecond = 100;
    }
  }
  return ticksPerSecond;
}

/** utime + stime of every process named as one of SERVERS, by pid. */
function serverTicks(): Record<Server, Map<number, number>> | null {
  const found: Record<Server, Map<number, number>> = { postgres: new Map(), redis: new Map() };
  let pids: string[];
  try {
    pids = readdirSync('/proc').filter((name) => /^\d+$/.test(name));
  } catch {
    return null;
  }
  for (const pid of pids) {
    let stat: string;
    try {
      stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    } catch {
      continue; // ended meanwhile
    }
    const close = stat.lastIndexOf(')');
    const name = stat.slice(stat.indexOf('(') + 1, close);
    const server = (Object.keys(SERVERS) as Server[]).find((s) => SERVERS[s] === name);
    if (!server) continue;
    // After "pid (comm) ": state is field 0, utime field 11, stime field 12.
    const fields = stat.slice(close + 2).split(' ');
    found[server].set(Number(pid), Number(fields[11]) + Number(fields[12]));
  }
  return found;
}

export function cpuSnapshot(): CpuSnapshot {
  return { process: process.cpuUsage(), servers: serverTicks() };
}

/**
 * CPU used since `from`. A server process started meanwhile counts in full; one that ended
 * meanwhile is missed (connection pools keep theirs open for the whole run).
 */
export function cpuSince(from: CpuSnapshot): CpuSpent {
  const used = process.cpuUsage(from.process);
  const now = serverTicks();
  const serverMs = (server: Server): number => {
    if (!now || !from.servers) return NaN;
    let ticks = 0;
    for (const [pid, total] of now[server]) ticks += total - (from.servers[server].get(pid) ?? 0);
    return (ticks * 1000) / clockTicks();
  };
  return {
    processMs: (used.user + used.system) / 1000,
    postgresMs: serverMs('postgres'),
    redisMs: serverMs('redis'),
  };
}
