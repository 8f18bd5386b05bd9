-- Argo CD health check of distillery.dev/StudentModel.
-- Suspended: Stopped=True (scaled to zero on purpose). Degraded: Stalled=True (the server's rollout
-- exceeded its progress deadline, or its pods are refused). Healthy: Ready=True. Progressing otherwise,
-- including while the operator has not yet observed the latest spec (status.observedGeneration).
local hs = {}
local function condition(t)
  if obj.status == nil or obj.status.conditions == nil then return nil end
  for _, c in ipairs(obj.status.conditions) do
    if c.type == t then return c end
  end
  return nil
end
if obj.status == nil or obj.status.observedGeneration == nil or
   (obj.metadata.generation ~= nil and obj.status.observedGeneration < obj.metadata.generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe the latest spec"
  return hs
end
local stopped = condition("Stopped")
if stopped ~= nil and stopped.status == "True" then
  hs.status = "Suspended"
  hs.message = stopped.message or "The model is stopped"
  return hs
end
local stalled = condition("Stalled")
if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = (stalled.reason or "Stalled") .. ": " .. (stalled.message or "")
  return hs
end
local ready = condition("Ready")
if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = ready.message or "The model is serving"
  return hs
end
hs.status = "Progressing"
if ready ~= nil and ready.message ~= nil then
  hs.message = ready.message
else
  hs.message = "Waiting for the student server to become ready"
end
return hs
