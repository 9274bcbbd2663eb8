/**
 * BullMQ refuses ':' in queue names, and job ids that are integers or contain ':'. Destination
 * names and delivery ids are mapped to names it accepts; the mapping is one-to-one.
 */
function escape(value: string): string {
  return value.replaceAll('%', '%25').replaceAll(':', '%3A');
}

/** Queue name of a destination. */
export function queueNameOf(destination: string): string {
  return escape(destination);
}

/** Job id of a delivery: never an integer, never with ':'. */
export function jobIdOf(deliveryId: string): string {
  return `d.${escape(deliveryId)}`;
}

/** What a job carries: the delivery it stands for and when that delivery falls due. */
export interface DeliveryJobData {
  readonly deliveryId: string;
  /** Due time in the store's clock (ms since epoch). */
  readonly runAt: number;
}

export function isDeliveryJobData(value: unknown): value is DeliveryJobData {
  const data = value as Partial<DeliveryJobData> | null;
  return typeof data?.deliveryId === 'string' && typeof data.runAt === 'number';
}
