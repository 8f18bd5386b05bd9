-- Argo CD health check of distillery.dev/DistillationJob.
-- Healthy: Complete=True. Degraded: Failed=True. Suspended: Suspended=True. Progressing otherwise,
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
local failed = condition("Failed")
if failed ~= nil and failed.status == "True" then
  hs.status = "Degraded"
  hs.message = (failed.reason or "Failed") .. ": " .. (failed.message or "")
  return hs
end
local complete = condition("Complete")
if complete ~= nil and complete.status == "True" then
  hs.status = "Healthy"
  hs.message = complete.message or "The job succeeded"
  return hs
end
local suspended = condition("Suspended")
if suspended ~= nil and suspended.status == "True" then
  hs.status = "Suspended"
  hs.message = suspended.message or "The job is suspended"
  return hs
end
hs.status = "Progressing"
local stage = obj.status.stage or "Pending"
if obj.status.progress ~= nil and obj.status.progress ~= "" then
  hs.message = stage .. " " .. obj.status.progress
else
  hs.message = stage
end
return hs
